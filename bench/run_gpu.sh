#!/usr/bin/env bash
# Run THERE: on the lent GPU machine, from the repo root, with `.debs` carried
# (fill it HERE first with `bash bench/fetch_debs.sh`). That machine has nvcc,
# cmake and ninja but no apt and none of the Debian -dev packages, so this
#   1. unpacks every .debs/*.deb with `dpkg -x` into a private prefix
#      (default /tmp/prefix; never /),
#   2. uses the build that bench/prebuild_gpu.sh made HERE for sm_90 and
#      packed into .debs/prebuilt/, when it was built from exactly these
#      sources and its binaries find their libraries (saving the minutes of
#      a build on the device); otherwise configures (Release, CUVI_CUDA=ON,
#      architecture from nvidia-smi via cmake/CuviCudaArch.cmake) against
#      that prefix only, and builds,
#   3. runs `CUVI_REQUIRE_GPU=1 ctest -L gpu` (the CUDA-vs-CPU tests and the
#      ppl suite on cuda:0),
#      (failures: up to 6 rerun with CUVI_SYNC_DEBUG=1 / compute-sanitizer),
#      then the main job (the coin example), the VAE and GMM examples on cuda:0,
#   4. runs every <build-dir>/bench/cuvi_bench_* binary's CUDA benchmarks,
#      then the same SVI models in Pyro and NumPyro on the GPU
#      (bench/compare/run.sh; pyro-ppl from the wheels fetch_debs.sh puts in
#      .debs/wheels, torch, jax and numpyro from the machine's image), then
#      the CPU benchmarks with the time left,
#   5. runs the other tests (`ctest -LE gpu`, as CI does) if time is left,
# and writes under $OUT:
#   meta.txt     GPU, driver, toolchain, commit, every command with its exit
#                status and duration, written as it goes (survives a kill)
#   run.log      all output (build, tests, benchmarks)
#   <bench>.json one per benchmark binary: its CUDA benchmarks
#   compare_frameworks.jsonl  Pyro's and NumPyro's runs (one JSON line each;
#                the table of steps/s and ratios is in meta.txt)
#   cpu_benchmarks.json  every binary's CPU benchmarks, {"<bench>": <its
#                Google Benchmark JSON>, ...} (run last, with the time left)
#   gpu_failures.log  only when GPU tests failed: up to 6 of them again with
#                CUVI_SYNC_DEBUG=1, the first 3 under compute-sanitizer
# The run tool returns at most 8 files: keep it to these (so at most three
# benchmark binaries). Test failures do not stop it: their exit statuses are
# in meta.txt and the benchmarks still run. The whole run stays inside
# CUVI_DEADLINE_S (default 540 s): later phases get what is left.
#
# usage: bash bench/run_gpu.sh [--build-only | --tests-only] [--no-prebuilt] [--jobs N]
#                              [--prefix DIR] [--build-dir DIR] [--debs DIR]
# env:   OUT (set by the run tool; default /tmp/cuvi_run_gpu_out),
#        CUVI_BENCH_MIN_TIME (0.2),
#        CUVI_BENCH_FILTER (all), CUVI_DEADLINE_S (540),
#        CUVI_CMAKE_ARGS (extra configure arguments)
#
# --build-only stops after the build (for a dry run on a machine without a
# GPU; the debs still come from .debs, and configure is told to use only them).
# --tests-only runs the main job and the GPU tests (with their diagnosis),
# then only the benchmarks CUVI_BENCH_FILTER names, if any: a second, short
# call that checks fixes to a first one's failures (about 3.5 minutes of
# device time with the machine's start).
set -euo pipefail

build_only=0
tests_only=0
jobs=16
prefix=/tmp/prefix
build_dir=build
debs=.debs
no_prebuilt=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-only) build_only=1 ;;
    --tests-only) tests_only=1 ;;
    --jobs) jobs=$2; shift ;;
    --prefix) prefix=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --debs) debs=$2; shift ;;
    --no-prebuilt) no_prebuilt=1 ;;
    *) echo "run_gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

repo=$(pwd)
[[ -f "$repo/CMakeLists.txt" && -d "$repo/runtime" ]] || { echo "run_gpu.sh: run from the repo root" >&2; exit 2; }
prefix=$(realpath -m "$prefix")
[[ "$prefix" != "/" && "$prefix" == /*/* ]] || { echo "run_gpu.sh: refusing prefix '$prefix'" >&2; exit 2; }
build_dir=$(realpath -m "$build_dir")
debs=$(realpath -m "$debs")
OUT=${OUT:-${TMPDIR:-/tmp}/cuvi_run_gpu_out}
mkdir -p "$OUT"
META=$OUT/meta.txt
LOG=$OUT/run.log
: >"$META"
: >"$LOG"
deadline=${CUVI_DEADLINE_S:-540}
min_time=${CUVI_BENCH_MIN_TIME:-0.2}
bench_filter=${CUVI_BENCH_FILTER:-}
ma=x86_64-linux-gnu  # the .debs are amd64: Debian's multiarch directory
usr=$prefix/usr

# ---- helpers ---------------------------------------------------------------

phase() {
  printf '\n=== [%s UTC, +%ds] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*" | tee -a "$LOG"
  printf '\n## %s (+%ds)\n' "$*" "$SECONDS" >>"$META"
}

# Runs a command with its output appended to run.log and shown; records the
# exact command line, its exit status and duration in meta.txt. Returns the
# command's status without tripping set -e (callers write `|| rc=$?`).
logged() {
  local cmd rc=0 t0=$SECONDS
  cmd=$(printf '%q ' "$@")
  printf '+ %s\n' "$cmd" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG" || rc=${PIPESTATUS[0]}
  printf '$ %s\n  -> exit %d in %ds\n' "$cmd" "$rc" "$((SECONDS - t0))" >>"$META"
  return "$rc"
}

left() { echo $((deadline - SECONDS)); }

unpack_deb() {
  if command -v dpkg >/dev/null; then
    dpkg -x "$1" "$2"
    return
  fi
  # No dpkg: a .deb is an ar archive whose data.tar.* holds the files.
  local member
  member=$(ar t "$1" | grep '^data\.tar')
  case $member in
    *.xz) ar p "$1" "$member" | tar -xJf - -C "$2" ;;
    *.zst) ar p "$1" "$member" | tar --zstd -xf - -C "$2" ;;
    *.gz) ar p "$1" "$member" | tar -xzf - -C "$2" ;;
    *) ar p "$1" "$member" | tar -xf - -C "$2" ;;
  esac
}

# Summary of benchmark JSON files: one line per cuda benchmark (the console
# output above has everything; the run tool returns only the last 12 kB).
summarize() {
  python3 - "$@" <<'EOF' || true
import json, sys
for path in sys.argv[1:]:
    try:
        runs = json.load(open(path))["benchmarks"]
    except Exception as e:  # a binary killed at the deadline leaves it unfinished
        print(f"{path}: unreadable ({e.__class__.__name__})")
        continue
    print(f"{path.rsplit('/', 1)[-1]}: cuda runs ({sum(1 for r in runs if '/cpu/' in r['name'])} cpu runs in the JSON)")
    print(f"{'benchmark':44s} {'us':>10s} {'GB/s':>8s} {'frac_copy':>9s} {'TFLOP/s':>8s}")
    for r in runs:
        if "/cuda/" not in r["name"]:
            continue
        name = r["name"].replace("/manual_time", "")
        if r.get("error_occurred"):
            print(f"{name:44s} {r.get('error_message', 'error')}")
            continue
        t = r["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[r["time_unit"]]
        gbs = r.get("bytes_per_second", 0) / 1e9
        frac = r.get("frac_of_copy", float("nan"))
        tf = r["flops"] / 1e12 if "flops" in r else float("nan")
        print(f"{name:44s} {t:10.1f} {gbs:8.1f} {frac:9.3f} {tf:8.2f}")
EOF
}

# ---- 0. what we run on -------------------------------------------------------

phase "machine and toolchain"
{
  echo "date_utc $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host $(hostname) kernel $(uname -r) cpus $(nproc)"
  echo "mode $([[ $build_only == 1 ]] && echo build-only || { [[ $tests_only == 1 ]] && echo tests-only; } || echo full) jobs $jobs prefix $prefix build $build_dir"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L || true
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm,clocks.mem \
      --format=csv || true
  else
    echo "nvidia-smi: not found"
  fi
  if git -C "$repo" rev-parse HEAD >/dev/null 2>&1; then
    echo "commit $(git -C "$repo" rev-parse HEAD)"
    git -C "$repo" status --short | sed 's/^/  dirty /'
  elif [[ -f "$debs/COMMIT" ]]; then
    echo "no .git here; $debs/COMMIT (written by bench/fetch_debs.sh):"
    sed 's/^/  /' "$debs/COMMIT"
  elif [[ -f "$repo/COMMIT" ]]; then
    echo "no .git here; COMMIT file:"
    sed 's/^/  /' "$repo/COMMIT"
  else
    echo "commit unknown (no .git, no COMMIT file)"
  fi
  for t in nvcc cmake ninja g++ /usr/local/cuda/bin/nvcc; do
    if p=$(command -v "$t"); then
      echo "$t: $p $("$t" --version 2>&1 | grep -E -m1 '[0-9]+\.[0-9]+' || true)"
    else
      echo "$t: not found"
    fi
  done
} 2>&1 | tee -a "$META" "$LOG"

# ---- 1. unpack the Debian packages ---------------------------------------------

phase "unpack $debs into $prefix"
shopt -s nullglob
deb_files=("$debs"/*.deb)
shopt -u nullglob
[[ ${#deb_files[@]} -gt 0 ]] || { echo "run_gpu.sh: no .deb in $debs (run bench/fetch_debs.sh here and carry .debs)" | tee -a "$LOG" "$META"; exit 1; }
if [[ -f "$debs/SHA256SUMS" ]]; then
  (cd "$debs" && sha256sum --quiet -c SHA256SUMS) 2>&1 | tee -a "$LOG" || { echo "run_gpu.sh: .debs checksum mismatch" | tee -a "$META"; exit 1; }
fi
# On a warm machine the prefix from the last call is still there: unpack again
# only when the set of packages changed.
stamp=$(cat "${deb_files[@]}" | sha256sum | cut -d' ' -f1)
if [[ -f "$prefix/.cuvi_debs_stamp" && $(cat "$prefix/.cuvi_debs_stamp") == "$stamp" ]]; then
  echo "prefix up to date ($stamp)" | tee -a "$LOG"
else
  rm -rf -- "$prefix"
  mkdir -p "$prefix"
  for f in "${deb_files[@]}"; do
    unpack_deb "$f" "$prefix"
    echo "unpacked $(basename "$f")" | tee -a "$LOG"
  done
  echo "$stamp" >"$prefix/.cuvi_debs_stamp"
fi
[[ -f "$debs/MANIFEST" ]] && sed 's/^/  deb /' "$debs/MANIFEST" >>"$META"

# Debian's alternatives symlinks (libopenblas.so.0 and cblas.h in the plain
# multiarch dirs) are made by dpkg's postinst, which `dpkg -x` never runs:
# name the openblas-openmp files directly. The runtime loader needs the
# prefix for libopenblas.so.0, libgfortran.so.5 and libbenchmark.so; ld needs
# it too, to resolve libopenblas's own DT_NEEDED while linking.
blas_lib=$usr/lib/$ma/openblas-openmp/libopenblas.so
cblas_inc=$usr/include/$ma/openblas-openmp
export CMAKE_PREFIX_PATH=$usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export LD_LIBRARY_PATH=$usr/lib/$ma/openblas-openmp:$usr/lib/$ma${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for f in "$blas_lib" "$cblas_inc/cblas.h" "$usr/lib/$ma/cmake/GTest/GTestConfig.cmake" \
         "$usr/lib/$ma/cmake/benchmark/benchmarkConfig.cmake" "$usr/lib/$ma/libgfortran.so.5"; do
  [[ -e "$f" ]] || { echo "run_gpu.sh: missing $f after unpacking" | tee -a "$LOG" "$META"; exit 1; }
done
{
  echo "CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} | tee -a "$META" "$LOG"

# ---- 1b. a build made here beforehand (bench/prebuild_gpu.sh) ------------------
# Used when it was built from exactly these sources and its binaries find
# their libraries; then configure and build are skipped. Otherwise (or with
# --no-prebuilt) the build below runs as before.
use_prebuilt=0
pre=$debs/prebuilt
try_prebuilt() {
  [[ $no_prebuilt == 0 && -f $pre/build-gpu.tar.xz && -f $pre/PREBUILT && -f $pre/SOURCES.sha256 ]] || return 1
  local src bdir missing=0 d f
  src=$(awk '$1 == "source_dir" {print $2}' "$pre/PREBUILT")
  bdir=$(awk '$1 == "build_dir" {print $2}' "$pre/PREBUILT")
  sed 's/^/  prebuilt /' "$pre/PREBUILT" >>"$META"
  if ! (cd "$repo" && sha256sum --quiet --strict -c "$pre/SOURCES.sha256") >>"$LOG" 2>&1; then
    echo "prebuilt: the sources differ from those it was built from" | tee -a "$META" "$LOG"
    return 1
  fi
  # The binaries and ctest's files name the source path they were built in:
  # make it this checkout.
  if [[ $(realpath -m "$src") != "$repo" ]]; then
    if [[ -e $src || -L $src ]]; then
      echo "prebuilt: $src exists here and is not this checkout" | tee -a "$META" "$LOG"
      return 1
    fi
    mkdir -p "$(dirname "$src")" && ln -s "$repo" "$src" || { echo "prebuilt: cannot link $src" | tee -a "$META" "$LOG"; return 1; }
    echo "prebuilt: linked $src -> $repo" | tee -a "$META" "$LOG"
  fi
  [[ $bdir == "$src"/* ]] || { echo "prebuilt: build dir $bdir outside $src" | tee -a "$META" "$LOG"; return 1; }
  rm -rf -- "$bdir"
  mkdir -p "$bdir"
  # tar keeps the files' times, so ctest finds its test lists up to date.
  # xz, or Python's lzma where the image lacks xz.
  local unxz=(xz -dc)
  command -v xz >/dev/null ||
    unxz=(python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)')
  "${unxz[@]}" "$pre/build-gpu.tar.xz" | tar -C "$bdir" -xf - ||
    { echo "prebuilt: unpacking failed" | tee -a "$META" "$LOG"; return 1; }
  # libcudart, libcublas and libcublasLt: the device toolkit's first, else
  # its Python wheels' (nvidia-*). Symlinked into one private folder, so
  # that nothing else of those folders (another cuDNN, NCCL, ...) can shadow
  # what PyTorch and JAX load for the comparison.
  local cudalibs=$prefix/cuda-libs lib
  rm -rf -- "$cudalibs"
  mkdir -p "$cudalibs"
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    for d in "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/../lib64" \
             /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
             $(python3 -c 'import glob, site; [print(p) for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib")]' 2>/dev/null); do
      if [[ -e $d/$lib ]]; then
        ln -sf "$(realpath "$d/$lib")" "$cudalibs/$lib"
        echo "prebuilt: $lib from $d" | tee -a "$META" "$LOG"
        break
      fi
    done
  done
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$cudalibs
  for f in "$bdir"/tests/cuvi_test_* "$bdir"/bench/cuvi_bench_* "$bdir"/examples/cuvi; do
    if ldd "$f" | grep -q 'not found'; then
      echo "prebuilt: $(basename "$f") lacks $(ldd "$f" | awk '/not found/ {print $1}' | tr '\n' ' ')" | tee -a "$META" "$LOG"
      missing=1
    fi
  done
  (( missing == 0 )) || return 1
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$META" "$LOG"
  build_dir=$bdir
  return 0
}
if [[ $build_only == 0 ]]; then
  phase "prebuilt build ($pre)"
  if try_prebuilt; then
    use_prebuilt=1
    echo "prebuilt: using $build_dir (no configure, no build)" | tee -a "$META" "$LOG"
  else
    echo "prebuilt: not used; building here" | tee -a "$META" "$LOG"
  fi
fi

# ---- 2. configure and build ----------------------------------------------------

build_rc=prebuilt
if [[ $use_prebuilt == 0 ]]; then
phase "configure"
# A build dir configured from another source path (another checkout) is
# unusable: start it afresh. Same path: reuse it (incremental on a warm machine).
if [[ -f "$build_dir/CMakeCache.txt" ]] &&
   ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$repo" "$build_dir/CMakeCache.txt"; then
  echo "stale $build_dir (other source dir): removing" | tee -a "$LOG"
  rm -rf -- "$build_dir"
fi
generator=Ninja
command -v ninja >/dev/null || { generator="Unix Makefiles"; echo "ninja not found: using make" | tee -a "$LOG" "$META"; }
# The package locations are given explicitly (not searched), so nothing from
# the host's /usr can be picked up instead; the cache check below proves it.
configure=(cmake -S "$repo" -B "$build_dir" -G "$generator"
  -DCMAKE_BUILD_TYPE=Release
  -DCUVI_CUDA=ON
  "-DGTest_DIR=$usr/lib/$ma/cmake/GTest"
  "-Dbenchmark_DIR=$usr/lib/$ma/cmake/benchmark"
  "-DBLAS_LIBRARIES=$blas_lib"
  "-DCUVI_CBLAS_INCLUDE_DIR=$cblas_inc"
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$usr/lib/$ma:$usr/lib/$ma/openblas-openmp")
# Extra configure arguments, whitespace-separated (e.g. for a dry run here:
# -DCMAKE_IGNORE_PREFIX_PATH=/usr, to prove nothing comes from the host).
read -ra extra_args <<<"${CUVI_CMAKE_ARGS:-}"
configure+=("${extra_args[@]}")
configure_rc=0
logged "${configure[@]}" || configure_rc=$?
if [[ $configure_rc -ne 0 ]]; then
  phase "configure failed (exit $configure_rc): stopping"
  exit "$configure_rc"
fi
echo "resolved package locations (CMakeCache.txt):" | tee -a "$META" "$LOG"
grep -E '^(GTest_DIR|benchmark_DIR|BLAS_LIBRARIES|CUVI_CBLAS_INCLUDE_DIR|CMAKE_CUDA_ARCHITECTURES|CMAKE_CUDA_COMPILER|CMAKE_CXX_COMPILER|OpenMP_CXX_FLAGS)[:=]' \
  "$build_dir/CMakeCache.txt" | sed 's/^/  /' | tee -a "$META" "$LOG"
for v in GTest_DIR benchmark_DIR BLAS_LIBRARIES CUVI_CBLAS_INCLUDE_DIR; do
  if ! grep -E "^$v:[A-Z]+=$prefix/" "$build_dir/CMakeCache.txt" >/dev/null; then
    echo "WARNING: $v does not point into $prefix" | tee -a "$META" "$LOG"
  fi
done

phase "build (-j$jobs)"
build_rc=0
# -k 0: keep going, so one broken target (a test mid-edit) still leaves the
# library, the other tests and the benchmarks built.
if [[ $generator == Ninja ]]; then
  logged ninja -C "$build_dir" -j "$jobs" -k 0 || build_rc=$?
else
  logged cmake --build "$build_dir" -j "$jobs" -- -k || build_rc=$?
fi
fi  # use_prebuilt == 0
echo "build_rc $build_rc" >>"$META"

if [[ $build_only == 1 ]]; then
  phase "done (--build-only): build exit $build_rc"
  exit "$build_rc"
fi

# ---- 3. what runs, most needed first ---------------------------------------
# A session's whole device budget (15 minutes, the machine's start included)
# may be this one call, so the phases run in the order of what a lease is
# for: the headline CUDA benchmarks (fused_normal_1e8 against the copy
# bandwidth, the SVI steps), the main job, the GPU tests, then the other
# examples and the full CUDA benchmark pass with what is left.

shopt -s nullglob
benches=()
for b in "$build_dir"/bench/cuvi_bench_*; do
  [[ -f "$b" && -x "$b" ]] && benches+=("$b")
done
shopt -u nullglob
[[ ${#benches[@]} -gt 0 ]] || echo "no benchmark binaries in $build_dir/bench" | tee -a "$META" "$LOG"
jsons=()
# One pass over every binary with one filter. A user filter
# (CUVI_BENCH_FILTER) replaces the passes below with one.
run_pass() {  # $1: filter regex, $2: json suffix, $3: output dir (default $OUT), $4: cap in s for the pass
  local i b name budget rc args avail t0=$SECONDS
  for i in "${!benches[@]}"; do
    b=${benches[$i]}
    name=$(basename "$b")
    # Share what is left (of the cap, if any) among the binaries still to
    # run, keeping 10 s to finish.
    avail=$(( $(left) - 10 ))
    [[ -n ${4:-} ]] && (( avail > ${4:-0} - (SECONDS - t0) )) && avail=$(( ${4:-0} - (SECONDS - t0) ))
    budget=$(( avail / (${#benches[@]} - i) ))
    if (( budget < 20 )); then
      echo "skipping $name ($1): ${budget}s left" | tee -a "$META" "$LOG"
      continue
    fi
    args=(--benchmark_out="${3:-$OUT}/$name$2.json" --benchmark_out_format=json --benchmark_min_time="$min_time"
          --benchmark_filter="$1")
    rc=0
    logged timeout "$budget" "$b" "${args[@]}" || rc=$?
    echo "bench_rc $name$2 $rc" >>"$META"
    if [[ -z ${3:-} ]]; then jsons+=("$OUT/$name$2.json"); fi
  done
}

# Pyro and NumPyro on the same models (bench/compare/run.sh), reusing the
# cuvi_bench_svi JSON just written. Failures are recorded, never fatal.
compare_frameworks() {
  local site=/tmp/cuvi_compare_site cmp=/tmp/cuvi_compare budget rc=0
  budget=$(( $(left) - 130 ))
  (( budget > 150 )) && budget=150
  if (( budget < 40 )) || [[ ! -f "$OUT/cuvi_bench_svi.json" ]]; then
    echo "skipping the framework comparison: ${budget}s left or no cuvi_bench_svi.json" | tee -a "$META" "$LOG"
    return 0
  fi
  shopt -s nullglob
  local wheels=("$debs"/wheels/*.whl)
  shopt -u nullglob
  if [[ ${#wheels[@]} -gt 0 ]]; then
    logged python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "${wheels[@]}" || echo "wheel install failed: Pyro will be reported unavailable" | tee -a "$META" "$LOG"
  fi
  rm -rf -- "$cmp"
  logged timeout "$budget" env LD_LIBRARY_PATH="${LD_LIBRARY_PATH//:$prefix\/cuda-libs/}" \
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHON=python3 CUVI_COMPARE_LOCAL_STEPS=100 \
    bash "$repo/bench/compare/run.sh" --device cuda --build-dir "$build_dir" --out "$cmp" \
    --cuvi-json "$OUT/cuvi_bench_svi.json" || rc=$?
  echo "compare_rc $rc" >>"$META"
  [[ -f "$cmp/frameworks.jsonl" ]] && cp "$cmp/frameworks.jsonl" "$OUT/compare_frameworks.jsonl"
  for f in meta.txt table.txt; do
    [[ -f "$cmp/$f" ]] && { echo "compare $f:"; sed 's/^/  /' "$cmp/$f"; } >>"$META"
  done
  return 0
}


# Merges one pass's JSONs (written to a scratch dir) into one file: the run
# tool returns at most 8.
merge_jsons() {  # $1: scratch dir, $2: suffix, $3: merged file
  python3 - "$1" "$2" "$3" <<'PYEOF' || echo "merging $1 failed" | tee -a "$META"
import glob, json, os, sys
merged = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*" + sys.argv[2] + ".json"))):
    name = os.path.basename(path)[: -len(sys.argv[2] + ".json")]
    try:
        merged[name] = json.load(open(path))
    except Exception as e:  # killed at its deadline: unfinished JSON
        merged[name] = {"error": f"{e.__class__.__name__}: {e}"}
json.dump(merged, open(sys.argv[3], "w"), indent=1)
PYEOF
}

if [[ -z $bench_filter && $tests_only == 0 ]]; then
  phase "headline CUDA benchmarks (min_time ${min_time}s)"
  key_dir=/tmp/cuvi_key_bench
  rm -rf -- "$key_dir"
  mkdir -p "$key_dir"
  run_pass '^(fused_normal_1e8|copy_d2d|sum_all|bm_coin|bm_local|bm_vae|bm_regression)/cuda' "_key" "$key_dir" 90
  merge_jsons "$key_dir" "_key" "$OUT/key_benchmarks.json"
  summarize "$key_dir"/*_key.json | tee -a "$LOG" "$META"
fi

# ---- the main job on the GPU --------------------------------------------------
phase "main job: coin on cuda:0"
if [[ -x $build_dir/examples/cuvi ]]; then
  rc=0
  logged timeout 60 "$build_dir/examples/cuvi" coin --device cuda:0 || rc=$?
  echo "example_rc 'coin --device cuda:0' $rc" >>"$META"
  { grep -E "steps/s|inferred" "$LOG" | tail -3 | sed 's/^/  /' >>"$META"; } || true
else
  echo "no $build_dir/examples/cuvi" | tee -a "$META" "$LOG"
fi

# ---- GPU tests -----------------------------------------------------------------

phase "GPU tests: CUVI_REQUIRE_GPU=1 ctest -L gpu"
gpu_tests_rc=0
# The gpu label holds the CUDA-vs-CPU tests and the whole ppl suite run again
# with cuda:0 as the default device (cuvi_test_gpu_ppl): ~400 processes,
# each starting a CUDA context, so 12 at a time (one GPU shares them well;
# one OpenMP thread each leaves cores for ctest and the host side).
# Capped so the diagnosis and the full benchmark pass keep ~170 s; with
# --tests-only, so the diagnosis and the filtered benchmarks (if any) keep
# ~60 s (or 20 s without a filter). The suite took 169 s at -j 12 on an H200.
reserve=170
[[ $tests_only == 1 ]] && reserve=$([[ -n $bench_filter ]] && echo 60 || echo 20)
gpu_budget=$(( $(left) - reserve ))
(( gpu_budget > 280 )) && gpu_budget=280
(( gpu_budget < 90 )) && gpu_budget=90
logged timeout "$gpu_budget" env CUVI_REQUIRE_GPU=1 OMP_NUM_THREADS=1 ctest --test-dir "$build_dir" -L gpu \
  --output-on-failure -j 12 --timeout 150 || gpu_tests_rc=$?
echo "ctest_gpu_rc $gpu_tests_rc" >>"$META"
# timeout stops ctest, not the tests it started: end those, or they share
# the GPU with the benchmarks that follow (seen: load 9.5 in a benchmark run).
pkill -f "$build_dir/tests/cuvi_test_" 2>/dev/null || true
# The list of failed tests, short, for the summary (ctest keeps it).
if [[ -f "$build_dir/Testing/Temporary/LastTestsFailed.log" ]]; then
  sed 's/^/  failed /' "$build_dir/Testing/Temporary/LastTestsFailed.log" | tee -a "$META" "$LOG"
fi

# ---- diagnose failed GPU tests ---------------------------------------------
# A kernel fault surfaces at the next synchronisation, often in another op
# than the one at fault. For up to 6 failed tests (at most ~60 s in all):
# each again with CUVI_SYNC_DEBUG=1 (a sync after every launch names the
# launch), and the first 3 under compute-sanitizer memcheck when the
# toolkit has it. Output into gpu_failures.log (the 8th returned file).
diagnose_failures() {
  local failed=$build_dir/Testing/Temporary/LastTestsFailed.log
  [[ -s $failed ]] || return 0
  local diag=$OUT/gpu_failures.log sanitizer="" t0=$SECONDS
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 || true)
  : >"$diag"
  echo "diagnosing $(wc -l <"$failed") failed GPU tests into gpu_failures.log (sanitizer: ${sanitizer:-none})" |
    tee -a "$META" "$LOG"
  # name -> command line, from ctest's own test list.
  ctest --test-dir "$build_dir" -L gpu --show-only=json-v1 >/tmp/cuvi_ctest_list.json 2>/dev/null || true
  local n=0 name cmd
  while IFS= read -r line && (( n < 6 )); do
    name=${line#*:}
    (( SECONDS - t0 > 60 )) && break
    cmd=$(python3 - "$name" <<'PYEOF' 2>/dev/null
import json, shlex, sys
for t in json.load(open("/tmp/cuvi_ctest_list.json")).get("tests", []):
    if t.get("name") == sys.argv[1]:
        print(shlex.join(t["command"]))
        break
PYEOF
)
    [[ -n $cmd ]] || { echo "== $name: command not found in ctest's list" >>"$diag"; continue; }
    n=$((n + 1))
    {
      echo "== $name  (CUVI_SYNC_DEBUG=1)"
      echo "\$ $cmd"
      timeout 30 env CUVI_REQUIRE_GPU=1 CUVI_SYNC_DEBUG=1 OMP_NUM_THREADS=2 bash -c "$cmd" 2>&1 |
        grep -v -e '^\[==' -e '^\[--' -e '^Running main' -e '^Note: Google Test filter' -e '^$' | tail -40
      echo "-> exit ${PIPESTATUS[0]}"
      if [[ -n $sanitizer && $n -le 3 ]]; then
        echo "== $name  (compute-sanitizer memcheck)"
        timeout 40 env CUVI_REQUIRE_GPU=1 OMP_NUM_THREADS=2 "$sanitizer" --tool memcheck --print-limit 8 \
          bash -c "$cmd" 2>&1 | grep -v '^\[ *\(RUN\|OK\) ' | tail -40
        echo "-> exit ${PIPESTATUS[0]}"
      fi
    } >>"$diag" 2>&1
  done <"$failed"
  echo "diagnosis took $((SECONDS - t0))s" | tee -a "$META" "$LOG"
}
if (( gpu_tests_rc != 0 )); then
  phase "diagnose failed GPU tests"
  diagnose_failures || echo "diagnosis failed" | tee -a "$META" "$LOG"
fi

if [[ $tests_only == 1 ]]; then
  # With a filter, its benchmarks too (after the tests, in the time left):
  # a fix's effect measured in the same call.
  if [[ -n $bench_filter ]]; then
    phase "benchmarks (min_time ${min_time}s, filter $bench_filter)"
    run_pass "$bench_filter" ""
    [[ ${#jsons[@]} -gt 0 ]] && summarize "${jsons[@]}" | tee -a "$LOG"
  fi
  phase "done (--tests-only)"
  echo "summary: build_rc $build_rc, ctest_gpu_rc $gpu_tests_rc, elapsed ${SECONDS}s" | tee -a "$META" "$LOG"
  grep -E '^(summary|build_rc|ctest_|example_rc)' "$META"
  exit 0
fi

# ---- the other examples --------------------------------------------------------
# The VAE and the
# semi-supervised VAE examples, the GMM example (enumeration), the HMM example and the regression example
# (a million rows, minibatches drawn on the device), on cuda:0, with their output in run.log
# and the last lines in meta.txt.
phase "examples on cuda:0 (vae, ssvae, dmm, gmm, hmm, regression)"
if [[ -x $build_dir/examples/cuvi ]]; then
  for args in "vae --device cuda:0 --epochs 3" "ssvae --device cuda:0 --epochs 3" "dmm --device cuda:0 --epochs 5" \
              "gmm --device cuda:0" "hmm --device cuda:0" \
              "regression --device cuda:0 --n 1000000 --batch 4096 --steps 3000"; do
    rc=0
    # Only while the full benchmark pass keeps ~120 s, and 30 s each.
    if (( $(left) < 150 )); then
      echo "skipping example '$args': $(left)s left" | tee -a "$META" "$LOG"
      continue
    fi
    # shellcheck disable=SC2086  # the arguments split on purpose
    logged timeout 30 "$build_dir/examples/cuvi" $args || rc=$?
    echo "example_rc '$args' $rc" >>"$META"
    { grep -E "steps/s|inferred|ELBO/image|accuracy|assignments|p\(stay\)|^weight|^bias" "$LOG" | tail -3 | sed 's/^/  /' >>"$META"; } || true
  done
else
  echo "no $build_dir/examples/cuvi" | tee -a "$META" "$LOG"
fi

# ---- the full CUDA benchmark pass, then Pyro and NumPyro -----------------------
# (No CPU benchmark pass here: the run tool returns at most 8 files, and
# CPU numbers are measured off the device.)
if [[ -n $bench_filter ]]; then
  phase "benchmarks (min_time ${min_time}s, filter $bench_filter)"
  run_pass "$bench_filter" ""
else
  phase "CUDA benchmarks (min_time ${min_time}s)"
  run_pass "cuda" ""
  phase "framework comparison (Pyro, NumPyro)"
  compare_frameworks
fi

# ---- the cpu tests (CI runs them too), with what is left ------------------

all_tests_rc=skipped
all_budget=$(( $(left) - 10 ))
if (( all_budget >= 60 )); then
  phase "cpu tests: ctest -LE gpu (budget ${all_budget}s)"
  all_tests_rc=0
  # 4 tests at a time with 4 OpenMP threads each: 16 threads on 16 cores.
  # A prebuilt build carries no install tree: its package test cannot run.
  skip_pkg=()
  [[ $use_prebuilt == 1 ]] && skip_pkg=(-E consumer_package)
  logged timeout "$all_budget" env OMP_NUM_THREADS=4 ctest --test-dir "$build_dir" -LE gpu "${skip_pkg[@]}" \
    --output-on-failure -j 4 --timeout 200 || all_tests_rc=$?
else
  echo "skipping the cpu tests: $(left)s left" | tee -a "$META" "$LOG"
fi
echo "ctest_all_rc $all_tests_rc" >>"$META"

phase "done"
{
  echo "summary: build_rc $build_rc, ctest_gpu_rc $gpu_tests_rc, ctest_all_rc $all_tests_rc, elapsed ${SECONDS}s"
  echo "date_utc_end $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee -a "$META" "$LOG"
[[ ${#jsons[@]} -gt 0 ]] && summarize "${jsons[@]}" | tee -a "$LOG"
grep -E '^(summary|build_rc|ctest_|bench_rc)' "$META"
exit 0
