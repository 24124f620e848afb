#!/usr/bin/env bash
# Run HERE (the Debian 12 development machine), from anywhere in the repo.
#
# The lent GPU machine has nvcc, cmake and ninja but no apt and none of the
# Debian -dev packages the build needs. This downloads them (and the shared
# libraries they pull in that such a machine may lack) into .debs/ at the
# repo root, which .gitignore already ignores; bench/run_gpu.sh unpacks them
# there with `dpkg -x` into a private prefix. Pass `.debs` in the run tool's
# `carry`.
#
# Re-run it before each device run: it only downloads what is missing, and it
# rewrites .debs/COMMIT (HEAD and the dirty state of the tree), because the
# device machine receives the working tree without .git.
#
# Not fetched on purpose: libc6, libstdc++6, libgcc-s1, libgomp1 and the
# compiler. The device machine's own (newer) ones must win; an older
# libstdc++ on LD_LIBRARY_PATH would break its toolchain.
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dest="$repo/.debs"
mkdir -p "$dest"

# What the build needs, by CMake lookup:
#   BLAS + cblas.h        libopenblas-openmp-dev (headers, libopenblas.so),
#                         libopenblas0-openmp (libopenblas.so.0; the OpenMP
#                         build, sharing the CPU backend's thread pool), and
#                         its Fortran runtime libgfortran5 + libquadmath0
#                         (libgomp1 comes with the machine's gcc).
#   GTest (config mode)   libgtest-dev, libgmock-dev (prebuilt static libs and
#                         cmake/GTest), googletest (sources; a dependency).
#   benchmark (config)    libbenchmark-dev, libbenchmark1debian (the .so).
packages=(
  libopenblas-openmp-dev
  libopenblas0-openmp
  libgfortran5
  libquadmath0
  libgtest-dev
  libgmock-dev
  googletest
  libbenchmark-dev
  libbenchmark1debian
)

cd "$dest"
: >MANIFEST.new
for p in "${packages[@]}"; do
  ver=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
  if [[ -z "$ver" || "$ver" == "(none)" ]]; then
    echo "fetch_debs: no candidate version for $p (apt-get update?)" >&2
    exit 1
  fi
  # Debian file names encode the epoch's ':' as '%3a'.
  file="${p}_${ver//:/%3a}_$(dpkg --print-architecture).deb"
  [[ -f "$file" ]] || file="${p}_${ver//:/%3a}_all.deb"
  if [[ ! -f "$file" ]]; then
    # As root, apt would drop to the _apt user, which cannot write here.
    if [[ $(id -u) -eq 0 ]]; then apt-get -q -o APT::Sandbox::User=root download "$p=$ver"
    else apt-get -q download "$p=$ver"; fi
  fi
  file=$(ls "${p}_${ver//:/%3a}_"*.deb)
  echo "$p $ver $file" >>MANIFEST.new
done
mv MANIFEST.new MANIFEST

# Drop .debs of other versions left by earlier runs (run_gpu.sh unpacks all).
for f in *.deb; do
  grep -q " $f\$" MANIFEST || { echo "fetch_debs: removing stale $f"; rm -f -- "$f"; }
done
sha256sum -- *.deb >SHA256SUMS

{
  echo "commit $(git -C "$repo" rev-parse HEAD)"
  echo "written $(date -u +%Y-%m-%dT%H:%M:%SZ) by bench/fetch_debs.sh"
  echo "dirty files (git status --short):"
  git -C "$repo" status --short
} >COMMIT

# Pyro for bench/compare on the GPU machine (its image has torch, jax and
# numpyro but not pyro-ppl): pure-Python wheels, installed there by
# run_gpu.sh with pip --no-index into a private site dir.
wheels=(pyro-ppl==1.9.2 pyro-api==0.1.2)
mkdir -p wheels
for w in "${wheels[@]}"; do
  name=${w%%==*}
  if ! ls wheels/"${name//-/_}"-"${w##*==}"-*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
      -d wheels "$w" || echo "fetch_debs: could not download $w (the comparison will skip Pyro)" >&2
  fi
done
ls -l wheels

debs=(*.deb)
echo "fetch_debs: ${#debs[@]} packages in $dest"
ls -l -- *.deb
du -cb -- *.deb | tail -1 | awk '{printf "fetch_debs: total %.1f MiB\n", $1 / 1048576}'
