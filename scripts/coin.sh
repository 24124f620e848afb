#!/usr/bin/env bash
# Builds cuvi and runs the main job: the coin example of Pyro's SVI Part I,
# on the best device present (pass --device cpu|cuda:N to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "${JOBS:-2}" --target cuvi_cli
"$BUILD/examples/cuvi" coin "$@"
