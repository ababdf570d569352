#!/usr/bin/env bash
# The smoke grid on a CUDA machine, in bf16, through the very same DAG and job code as the CPU default:
# only the config's device/dtype differ. Also runs the paper-profile loader tests (tiny local models saved
# by path) on the GPU. Prints a short report; with OUT set, copies the tables, logs and manifests there.
#
#   bash workflows/scripts/gpu_smoke.sh [only=cat,ssa,...]   (default: every method whose packages import)
#
# Environment: CORES (default: all), SMOKE_TIMEOUT (seconds for the DAG, default 420), SKIP_TESTS=1 to skip
# the loader tests, OUT (optional).
set -uo pipefail
cd "$(dirname "$0")/../.."
CORES=${CORES:-$(nproc)}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-420}
PY=${PYTHON:-python3}

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY workflows/scripts/gpu_report.py versions transformers snakemake tabpfn mambapy peft flwr ray vllm lm_eval

ONLY=${1:-}
if [ -z "$ONLY" ]; then
    methods="cat ssa cot2 bread tldr ttt cap"
    $PY -c "import flwr, ray" 2>/dev/null && methods="$methods fedyolo" || echo "fedyolo skipped: flwr/ray absent"
    ONLY="only=$(echo $methods | tr ' ' ',')"
fi

if [ -z "${SKIP_TESTS:-}" ]; then
    echo "== paper-profile loader tests on cuda/bf16"
    OCTOBENCH_TEST_DEVICE=cuda OCTOBENCH_TEST_DTYPE=bfloat16 timeout 240 $PY -m pytest -q -p no:cacheprovider \
        tests/test_bread_paper.py tests/test_tldr_paper.py tests/test_ssa_hf.py tests/test_ttt_tabpfn.py 2>&1 | tail -15
fi

echo "== smoke grid on cuda/bf16 ($ONLY, $CORES cores)"
start=$(date +%s)
timeout "$SMOKE_TIMEOUT" snakemake --cores "$CORES" --rerun-incomplete --keep-going --quiet rules \
    --config device=cuda dtype=bfloat16 "$ONLY" > results/gpu_smoke_snakemake.log 2>&1
rc=$?
echo "snakemake exit $rc after $(( $(date +%s) - start )) s"
tail -5 results/gpu_smoke_snakemake.log
$PY workflows/scripts/gpu_report.py methods
[ -f results/claims.parquet ] && $PY -m methods.core.show 2>&1 | tail -80
if [ -n "${OUT:-}" ]; then
    cp results/leaderboard.parquet results/claims.parquet "$OUT"/ 2>/dev/null
    tar czf "$OUT/gpu_smoke_runs.tgz" results/logs results/gpu_smoke_snakemake.log \
        $(find results/runs -name manifest.json -o -name metrics.parquet) 2>/dev/null
fi
exit $rc
