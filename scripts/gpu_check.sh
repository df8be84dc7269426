#!/usr/bin/env bash
# The GPU check: notebooks 03 and 04 under PROFILE=gpu (SmolLM2-135M at the paper's SAE width: all five variants,
# every 2nd layer up to the middle, R = 64, k = 32, ~4M streamed tokens per SAE, token baseline on 100 latents per
# SAE), then the benchmarks on the GPU. Everything lands under figures/gpu/ (the notebooks' figures, the benchmark
# JSON, nvidia-smi's view and this script's log). Offline: no network is needed.
#
#   scripts/gpu_check.sh                   # the full check (~1 h on one data-centre GPU; the run prints its estimate)
#   SET="layers=[0,8] train_tokens=1048576" scripts/gpu_check.sh    # a smaller run (overrides as in make figures)
#   BENCH=0 scripts/gpu_check.sh           # the notebooks only
#
# Notebook 03 prints its estimate of disk, host memory, GPU memory and hours before it starts, and refuses a run
# that cannot fit the machine (rsae_utils.params.budget).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT="${RSAE_FIGURES_DIR:-figures}/gpu"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
echo "== gpu_check $(date -u +%FT%TZ) on $(hostname); git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
fi
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, torch.version.cuda); sys.exit(0 if ok else 3)" \
    || { echo "no CUDA device visible to torch: PROFILE=gpu needs one (or SET=\"device='cpu' ...\")"; \
         [[ "${SET:-}" == *"device="* ]] || exit 3; }

t0=$SECONDS
"$PY" -m rsae_utils --profile gpu --nb "03 04" --set-string "${SET:-}"
echo "== notebooks 03 04 (gpu): $((SECONDS - t0)) s"

if [ "${BENCH:-1}" = "1" ]; then
    t0=$SECONDS
    "$PY" benchmarks/bench_topk_train.py --devices cuda --json "$OUT/bench_topk_train.json"
    "$PY" benchmarks/bench_cache_train.py --json "$OUT/bench_cache_train.json"
    "$PY" benchmarks/bench_matching.py --sizes 1152 2304 --out "$OUT/bench_matching.json"
    "$PY" benchmarks/bench_mmcs.py | tee "$OUT/bench_mmcs.txt"
    echo "== benchmarks: $((SECONDS - t0)) s"
fi
echo "== done; results under $OUT"
