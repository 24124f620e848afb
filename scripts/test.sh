#!/usr/bin/env bash
# Builds cuvi (CUDA backend too when nvcc is found) and runs the whole test
# suite. GPU tests skip without a GPU; CUVI_REQUIRE_GPU=1 makes them fail.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure
