#!/usr/bin/env bash
# Run HERE (the Debian 12 development machine, which has nvcc but no GPU),
# after bench/fetch_debs.sh and before a device run. It builds the CUDA
# backend, the tests, the benchmarks and the examples for sm_90 (H100/H200)
# into build-gpu/ and packs what a GPU run executes into
# .debs/prebuilt/ (carried with .debs), so that bench/run_gpu.sh on the
# device machine skips its configure and build (minutes of a short device
# budget) and goes straight to the tests and benchmarks.
#
# The device machine gets the working tree at some path of its own; the
# binaries and ctest's files name this checkout's absolute paths (the test
# data directory, the build directory). run_gpu.sh therefore links this
# source path to its own checkout there (as root, when the path is free) and
# unpacks the build at the recorded build path. It uses the prebuilt build
# only when every source file is the one it was built from (SOURCES.sha256,
# checked there without git) and every binary finds its shared libraries;
# otherwise it builds from source as before.
#
# Built without NCCL and MPI (the device machine has neither library); the
# binaries need libopenblas, libgfortran and libbenchmark (from .debs),
# libcudart and libcublas (the device's CUDA toolkit) and its libstdc++,
# libgomp and glibc (newer than Debian 12's, so compatible).
#
# usage: bash bench/prebuild_gpu.sh [--arch 90] [--jobs 2]
set -euo pipefail

arch=90
jobs=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --arch) arch=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    *) echo "prebuild_gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
build=$repo/build-gpu
dest=$repo/.debs/prebuilt
cd "$repo"
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || { echo "prebuild_gpu.sh: no nvcc" >&2; exit 1; }

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUVI_CUDA=ON \
  -DCUVI_NCCL=OFF -DCUVI_MPI=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build "$build" -j "$jobs"
# gtest_discover_tests runs at test time (PRE_TEST): list the tests here, once
# (listing starts no CUDA context), so ctest there finds the lists up to date
# and never needs this machine's CMake modules.
ctest --test-dir "$build" -N >/dev/null

# What a GPU run executes: the test binaries (gpu label first), the
# benchmarks, the examples' CLI, and ctest's files.
files=()
for f in tests/cuvi_test_gpu tests/cuvi_test_gpu_ppl tests/cuvi_test_runtime tests/cuvi_test_kernels \
         tests/cuvi_test_ppl tests/cuvi_test_extension examples/cuvi \
         bench/cuvi_bench_runtime bench/cuvi_bench_dist bench/cuvi_bench_svi; do
  [[ -x $build/$f ]] || { echo "prebuild_gpu.sh: $f was not built" >&2; exit 1; }
  files+=("$f")
done
while IFS= read -r f; do files+=("$f"); done < <(cd "$build" && find . -name CTestTestfile.cmake -o \
  -name '*_include.cmake' -o -name '*_tests.cmake' | sed 's|^\./||' | sort)

mkdir -p "$dest"
rm -f "$dest"/*.tmp
# xz with a dictionary larger than one binary: the binaries share most of
# libcuvi.a's code, which then compresses to one copy. Written beside, then
# renamed, so a cancelled run leaves no half archive.
tar -C "$build" -cf - "${files[@]}" | xz -T1 --lzma2=preset=6,dict=256MiB >"$dest/build-gpu.tar.xz.tmp"
mv "$dest/build-gpu.tar.xz.tmp" "$dest/build-gpu.tar.xz"

# The sources the build came from (what the device machine receives: tracked
# and untracked-but-not-ignored files), minus what cannot change the build
# (results, docs, the run scripts themselves).
git ls-files -co --exclude-standard -z |
  grep -zv -e '^bench/results/' -e '^bench/compare/' -e '^bench/[^/]*\.sh$' -e '^\.ci/' -e '^scripts/' -e '\.md$' |
  xargs -0 sha256sum >"$dest/SOURCES.sha256.tmp"
mv "$dest/SOURCES.sha256.tmp" "$dest/SOURCES.sha256"

{
  echo "source_dir $repo"
  echo "build_dir $build"
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- && echo '' || echo ' (dirty)')"
  echo "written $(date -u +%Y-%m-%dT%H:%M:%SZ) by bench/prebuild_gpu.sh"
  echo "cuda_architectures $arch"
  echo "nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' || true)"
  echo "glibc $(ldd --version | head -1)"
} >"$dest/PREBUILT"
cat "$dest/PREBUILT"
ls -l "$dest"
du -cb "$repo/.debs"/*.deb "$dest"/* "$repo/.debs"/wheels/* 2>/dev/null | tail -1 |
  awk '{printf "prebuild_gpu: .debs now %.1f MiB (the run tool carries at most 64 MiB)\n", $1 / 1048576}'
