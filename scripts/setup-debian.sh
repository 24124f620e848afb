#!/usr/bin/env bash
# Installs the Debian packages cuvi builds against (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  cmake ninja-build g++ libgtest-dev libgmock-dev libbenchmark-dev libopenblas-openmp-dev libomp-dev \
  libopenmpi-dev openmpi-bin
