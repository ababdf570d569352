#!/usr/bin/env bash
# The GPU checks the open issues ask for, in one lease of one CUDA machine, through the suite's own code:
#   1. CoT2 (issue 6): methods.cot2.speed at the official MNNS size and the paper's graph-task size, on an
#      idle GPU.
#   2. in parallel, two Snakemake runs on the shared GPU:
#      a. the paper spot check (workflows/scripts/gpu_paper_check.py): SSA fine-tune of a GPT-2
#         124M-architecture model in bf16 first (issue 3), the paper-profile MNNS SFT jobs for a few epochs
#         (issue 6), and the MQAR grid of config/paper.yaml, reduced (issue 3);
#      b. FedYolo's smoke grid (issue 9) with --config device=cuda dtype=bfloat16, in a copy of the checkout
#         (one Snakemake per working directory).
# Prints a report; the tables, logs and manifests go to $OUT (default /tmp/gpu_checks) as two archives.
#
#   bash workflows/scripts/gpu_issue_checks.sh
#
# A machine without a package registry gets the missing packages as wheels in .whl*/ folders of the checkout
# (installed with --no-deps into /tmp/site). Environment: PARALLEL_TIMEOUT (s, default 330), COT2_EPOCHS (5),
# MQAR_STEPS (1500), SSA_STEPS (400), MQAR_LENGTHS ("64"; "64 128" for two lengths), N_LAYER (12), OUT; DEVICE=cpu DTYPE=float32 with
# tiny sizes rehearses the script on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
OUT=${OUT:-/tmp/gpu_checks}
LOGS=/tmp/gpu_check_logs  # gathered into $OUT's archives at the end (a lease returns few files)
mkdir -p "$OUT" "$LOGS"
PY=${PYTHON:-python3}
PARALLEL_TIMEOUT=${PARALLEL_TIMEOUT:-330}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
export PYTHONUNBUFFERED=1 FLWR_TELEMETRY_ENABLED=0 RAY_USAGE_STATS_ENABLED=0

wheels=$([ "${WHEELS:-1}" = 0 ] || find . -maxdepth 2 -path './.whl*/*.whl' | awk -F/ '!seen[$NF]++')
if [ -n "$wheels" ]; then
    echo "== installing $(echo "$wheels" | wc -l) carried wheels into /tmp/site"
    # shellcheck disable=SC2086
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels \
        || { echo "wheel install failed"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
fi
command -v python >/dev/null || { mkdir -p /tmp/site/bin; ln -sf "$(command -v "$PY")" /tmp/site/bin/python;
                                  export PATH=/tmp/site/bin:$PATH; }

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nproc
$PY workflows/scripts/gpu_report.py versions transformers snakemake mambapy flwr ray flwr-datasets mnist1d datasets

echo "== 1. CoT2 timing on an idle GPU (issue 6)"
timeout 90 $PY -m methods.cot2.speed --device "$DEVICE" --epochs 3 --grpo-steps 20 2>&1 | tail -8
timeout 75 $PY -m methods.cot2.speed --device "$DEVICE" --epochs 2 --grpo-steps 10 --layers 4 --heads 4 --d-model 32 \
    2>&1 | tail -8

echo "== 2. in parallel: paper spot check (SSA fine-tune first, CoT2 paper-size SFT, MQAR grid; issues 3 and 6)"
echo "==    and FedYolo's smoke grid (issue 9) on the same GPU"
mkdir -p /tmp/paper_check
$PY workflows/scripts/gpu_paper_check.py --root /tmp/paper_check --ssa-steps "${SSA_STEPS:-400}" \
    --mqar-steps "${MQAR_STEPS:-1500}" --mqar-lengths ${MQAR_LENGTHS:-64} \
    --cot2-epochs "${COT2_EPOCHS:-5}" --n-layer "${N_LAYER:-12}" > /tmp/paper_check/cmd 2>/tmp/paper_check/derive.log \
    || { echo "gpu_paper_check failed"; tail -20 /tmp/paper_check/derive.log; }
rm -rf /tmp/fedrepo && mkdir /tmp/fedrepo
tar --exclude='./.whl*' --exclude='./.git' --exclude='./.snakemake' --exclude='./results/*' -cf - . \
    | tar -xf - -C /tmp/fedrepo
cp results/paper_claims.csv /tmp/fedrepo/results/
start=$(date +%s)
(
    cd /tmp/fedrepo && timeout "$PARALLEL_TIMEOUT" snakemake --cores "${FED_CORES:-4}" --keep-going \
        --rerun-incomplete --quiet rules --config device="$DEVICE" dtype="$DTYPE" only=fedyolo \
        > "$LOGS/fedyolo_snakemake.log" 2>&1
    echo "fedyolo: snakemake exit $? after $(( $(date +%s) - start )) s"
) &
fed_pid=$!
timeout "$PARALLEL_TIMEOUT" snakemake --configfile /tmp/paper_check/paper_check.yaml --cores "${PAPER_CORES:-12}" \
    --resources gpu=12 --keep-going --rerun-incomplete --quiet rules \
    --config device="$DEVICE" dtype="$DTYPE" threads=1 \
    --prioritize results/runs/paper/wikitext103/ssa/gpt2_ft/seed0 results/runs/paper/wikitext103/ssa/gpt2_ssa_ft/seed0 \
    > "$LOGS/paper_check_snakemake.log" 2>&1
echo "paper check: snakemake exit $? after $(( $(date +%s) - start )) s"
for log in results/logs/paper/mnns/cot2/*/seed0.log; do grep -h -E "epoch|done in" "$log" | tail -n 4; done
for log in results/logs/paper/wikitext103/ssa/*/seed0.log; do grep -h -v "^ *$" "$log" | tail -n 6; done
wait $fed_pid
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader || true

echo "== jobs finished (paper check)"
$PY workflows/scripts/gpu_report.py runs "$REPO"
echo "== jobs finished (fedyolo smoke)"
$PY workflows/scripts/gpu_report.py runs /tmp/fedrepo
tail -5 "$LOGS/fedyolo_snakemake.log"
grep -h -E "round|error|Error" /tmp/fedrepo/results/logs/smoke/federated_vision/fedyolo/suite/seed0.log 2>/dev/null | tail -15
for root in "$REPO" /tmp/fedrepo; do  # the claims table, where the DAG got as far as its leaderboard
    [ -f "$root/results/claims.parquet" ] && (cd "$root" && $PY -m methods.core.show 2>&1 | tail -30)
done

cp /tmp/paper_check/paper_check.yaml "$LOGS/" 2>/dev/null
tar czf "$OUT/paper_check.tgz" results/logs results/leaderboard.parquet results/claims.parquet \
    $(find results/runs -name manifest.json -o -name metrics.parquet) -C "$LOGS" . 2>/dev/null
(cd /tmp/fedrepo && tar czf "$OUT/fedyolo.tgz" results/logs results/leaderboard.parquet results/claims.parquet \
    $(find results/runs results/cache -name manifest.json -o -name metrics.parquet) 2>/dev/null)
ls -la "$OUT"
