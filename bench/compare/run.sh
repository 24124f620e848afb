#!/usr/bin/env bash
# One side-by-side run on one machine: cuvi_bench_svi's SVI benchmarks and
# the same models in Pyro and NumPyro (svi_pyro.py, svi_numpyro.py), one
# after the other, then a table of steps per second and the ratios.
#
# usage: bash bench/compare/run.sh [--device cpu|cuda] [--build-dir DIR] [--out DIR]
#                                  [--cuvi-json FILE]
# --cuvi-json: use that cuvi_bench_svi JSON (from the same run and machine,
# e.g. bench/run_gpu.sh's) instead of running the benchmark again.
# env:   PYTHON (python3 with torch + pyro-ppl and/or jax + numpyro; a
#        framework that does not import is reported and skipped),
#        CUVI_COMPARE_STEPS (coin steps, default 2000),
#        CUVI_COMPARE_LOCAL_STEPS (local_latents steps, default 200)
#
# Writes under --out (default bench/results/compare-<device>-<date>):
#   meta.txt        date, machine, commit, thread settings, versions
#   cuvi_svi.json   Google Benchmark JSON of cuvi_bench_svi (the device's runs)
#   frameworks.jsonl  one JSON line per Pyro / NumPyro run
#   table.txt       steps/s side by side and cuvi's ratio to each
set -euo pipefail

device=cpu
build_dir=build
out=
cuvi_json=
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --out) out=$2; shift ;;
    --cuvi-json) cuvi_json=$2; shift ;;
    *) echo "compare/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $device == cpu || $device == cuda ]] || { echo "compare/run.sh: --device cpu|cuda" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-python3}
steps=${CUVI_COMPARE_STEPS:-2000}
local_steps=${CUVI_COMPARE_LOCAL_STEPS:-200}
out=${out:-$repo/bench/results/compare-$device-$(date -u +%Y-%m-%d)}
mkdir -p "$out"
bench=$build_dir/bench/cuvi_bench_svi
[[ -n $cuvi_json || -x $bench ]] || { echo "compare/run.sh: $bench not built" >&2; exit 1; }

# The (N, B) sizes of bench_svi.cpp's local_latents runs on each device.
if [[ $device == cpu ]]; then sizes=("65536 1024" "1048576 16384"); else sizes=("1048576 16384" "16777216 65536" "16777216 1048576"); fi
# The (N, K) sizes of its gmm_enum runs (TraceEnum_ELBO; Pyro only: NumPyro's needs funsor).
if [[ $device == cpu ]]; then gmm_sizes=("4096 4" "65536 8"); else gmm_sizes=("65536 8" "1048576 16"); fi
# The (N, B, D) sizes of its regression runs (AutoDiagonalNormal, minibatched).
if [[ $device == cpu ]]; then reg_sizes=("1048576 4096 3" "1048576 65536 16"); else reg_sizes=("1048576 4096 3" "16777216 262144 16"); fi
# The (B, H) sizes of its vae runs (784 pixels, 50 latents, Pyro's VAE tutorial).
if [[ $device == cpu ]]; then vae_sizes=("128 400"); else vae_sizes=("128 400" "1024 400"); fi

{
  echo "date_utc $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  git -C "$repo" status --short 2>/dev/null | sed 's/^/  dirty /'
  echo "host $(uname -srm), $(nproc) cpus: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset} (cuvi's CPU backend and torch use all cores unless set)"
  echo "python $("$py" --version 2>&1)"
  "$py" - <<'EOF' 2>&1 || true
import importlib
for m in ("torch", "pyro", "jax", "numpyro"):
    try:
        print(f"{m} {importlib.import_module(m).__version__}")
    except Exception as e:
        print(f"{m} unavailable ({e.__class__.__name__}: {e})")
EOF
} | tee "$out/meta.txt"

if [[ -n $cuvi_json ]]; then
  echo "== cuvi_bench_svi: results from $cuvi_json"
  cp "$cuvi_json" "$out/cuvi_svi.json"
else
  echo "== cuvi_bench_svi ($device)"
  "$bench" --benchmark_filter="/$device(/|$)" --benchmark_min_time=1 \
    --benchmark_out="$out/cuvi_svi.json" --benchmark_out_format=json
fi

: >"$out/frameworks.jsonl"
run_py() {  # script, args...: appends its JSON line, or an error line
  local script=$1
  shift
  echo "== $script $*"
  local line
  if line=$("$py" "$repo/bench/compare/$script" "$@" 2>"$out/stderr.tmp" | tail -1) && [[ $line == \{* ]]; then
    echo "$line" | tee -a "$out/frameworks.jsonl"
  else
    echo "{\"script\": \"$script\", \"args\": \"$*\", \"error\": \"$(tail -1 "$out/stderr.tmp" | tr -d '"\\')\"}" |
      tee -a "$out/frameworks.jsonl"
  fi
  rm -f "$out/stderr.tmp"
}
pydev=$device
# Pyro then NumPyro on each model, every model's smallest size before any
# model's next one: a run cut short by its caller's time limit still leaves
# pairs to compare on every model (the first GPU run, walking all of
# Pyro's sizes first, got Pyro's two smallest only).
both() {  # the model's arguments; Pyro takes the device, NumPyro jax's default
  run_py svi_pyro.py "$@" --device "$pydev"
  run_py svi_numpyro.py "$@"
}
both --model coin --steps "$steps"
for i in 0 1 2; do
  if ((i < ${#sizes[@]})); then
    read -r n b <<<"${sizes[$i]}" && both --model local_latents --n "$n" --b "$b" --steps "$local_steps"
  fi
  if ((i < ${#reg_sizes[@]})); then
    read -r n b d <<<"${reg_sizes[$i]}" && both --model regression --n "$n" --b "$b" --d "$d" --steps "$local_steps"
  fi
  if ((i < ${#vae_sizes[@]})); then
    read -r b h <<<"${vae_sizes[$i]}" && both --model vae --b "$b" --h "$h" --steps "$local_steps"
  fi
  if ((i < ${#gmm_sizes[@]})); then  # Pyro only: NumPyro's needs funsor
    read -r n k <<<"${gmm_sizes[$i]}" && run_py svi_pyro.py --model gmm --n "$n" --k "$k" --steps "$local_steps" --device "$pydev"
  fi
done

"$py" - "$out" "$device" <<'EOF' | tee "$out/table.txt"
import json, sys
out, device = sys.argv[1], sys.argv[2]
cuvi = {}
for r in json.load(open(f"{out}/cuvi_svi.json"))["benchmarks"]:
    if r.get("error_occurred") or r.get("run_type") == "aggregate" or f"/{device}/" not in r["name"]:
        continue
    parts = r["name"].split("/")  # bm_coin/cpu/manual_time, bm_local/cpu/N/B/manual_time
    if parts[0] == "bm_coin":
        key = ("coin", 0, 0)
    elif parts[0] == "bm_local":
        key = ("local_latents", int(parts[2]), int(parts[3]))
    elif parts[0] == "bm_gmm_enum":
        key = ("gmm", int(parts[2]), int(parts[3]))
    elif parts[0] == "bm_regression":
        key = ("regression", int(parts[2]), int(parts[3]), int(parts[4]))
    elif parts[0] == "bm_vae":
        key = ("vae", int(parts[2]), int(parts[3]))
    else:
        continue  # bm_coin_pipelined: no counterpart in the other frameworks' scripts
    cuvi[key] = r.get("items_per_second", float("nan"))
others = {}
for line in open(f"{out}/frameworks.jsonl"):
    r = json.loads(line)
    if "error" in r:
        print(f"# {r['script']} {r['args']}: {r['error']}")
        continue
    if r["model"] == "coin":
        key = ("coin", 0, 0)
    elif r["model"] == "gmm":
        key = ("gmm", r["n"], r["k"])
    elif r["model"] == "regression":
        key = ("regression", r["n"], r["b"], r["d"])
    elif r["model"] == "vae":
        key = ("vae", r["b"], r["h"])
    else:
        key = ("local_latents", r["n"], r["b"])
    others.setdefault(key, {})[r["framework"]] = r["steps_per_s"]
print(f"{'model':32s} {'cuvi':>10s} {'pyro':>10s} {'numpyro':>10s} {'cuvi/pyro':>10s} {'cuvi/numpyro':>12s}  (steps/s)")
for key in sorted(set(cuvi) | set(others)):
    if key[0] == "coin":
        name = "coin"
    elif key[0] == "gmm":
        name = f"gmm_enum N={key[1]} K={key[2]}"
    elif key[0] == "regression":
        name = f"regression N={key[1]} B={key[2]} D={key[3]}"
    elif key[0] == "vae":
        name = f"vae B={key[1]} H={key[2]}"
    else:
        name = f"local_latents N={key[1]} B={key[2]}"
    c = cuvi.get(key, float("nan"))
    p = others.get(key, {}).get("pyro", float("nan"))
    n = others.get(key, {}).get("numpyro", float("nan"))
    print(f"{name:32s} {c:10.1f} {p:10.1f} {n:10.1f} {c / p:10.2f} {c / n:12.2f}")
EOF
echo "compare/run.sh: results in $out"
