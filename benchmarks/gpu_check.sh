#!/usr/bin/env bash
# One call that runs every GPU path of ai-ready on one CUDA GPU and prints a table last (issue 19).
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--budget SECONDS] [--dry-run]
#
# Steps run in order, each under its own timeout; once the budget (default 480 s) is spent the remaining steps
# are skipped and said so. Result files go into one folder (default gpu-check-<UTC time>). Optional steps that
# need sqlalchemy or junitparser are skipped with the reason when those are missing. --dry-run lists the steps
# and runs nothing (it works on a CPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
BUDGET=480
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'; accepted: --out DIR, --budget SECONDS, --dry-run" >&2; exit 2 ;;
  esac
done
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check.sh: --budget must be whole seconds, got '$BUDGET'" >&2; exit 2 ;; esac

PY="${PYTHON:-python3}"
AIR=("$PY" -m ai_ready)
START=$(date +%s)
STATUS_FILE="$OUT/steps.tsv"

# name | timeout s | needs (python module, or -) | command
STEPS=(
  "info|60|-|${AIR[*]} info --json"
  "gemm|120|-|${AIR[*]} bench gemm --quick --dtype fp32,tf32,bf16,fp16,fp8 -o $OUT/gemm.json"
  "gemm-fidelity|120|-|$PY benchmarks/gemm_fidelity.py --device cuda --rounds 3"
  "memory|90|-|${AIR[*]} bench memory --quick -o $OUT/memory.json"
  "kernels|60|-|${AIR[*]} bench kernels --quick -o $OUT/kernels.json"
  "collectives-nccl|60|-|${AIR[*]} bench collectives --backend nccl --quick -o $OUT/collectives.json"
  "train-gpt-1b|120|-|${AIR[*]} train gpt --preset 1b --precision bf16 --steps 10 -o $OUT/train-gpt-1b.json"
  "train-moe-medium|90|-|${AIR[*]} train moe --preset medium --precision bf16 --steps 10 -o $OUT/train-moe-medium.json"
  "train-cnn-medium|60|-|${AIR[*]} train cnn --preset medium --precision bf16 --steps 10 -o $OUT/train-cnn-medium.json"
  "profile-myjob|120|-|${AIR[*]} profile examples/myjob -o $OUT/profile --no-extrapolate"
  "accept-quick|240|sqlalchemy|${AIR[*]} accept --system local --suite quick --db sqlite:///$OUT/accept.db --results $OUT/accept --junit $OUT/accept-junit.xml"
  "report|60|-|${AIR[*]} report $OUT/gemm.json $OUT/memory.json $OUT/kernels.json $OUT/collectives.json $OUT/train-gpt-1b.json $OUT/train-moe-medium.json $OUT/train-cnn-medium.json $OUT/profile/myjob/profile.json -o $OUT/report.html"
)

if [ "$DRY" = 1 ]; then
  echo "gpu_check.sh --dry-run: would run these steps in $OUT within $BUDGET s:"
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit needs command <<<"$step"
    printf '  %-18s timeout %4ss  needs %-10s  %s\n' "$name" "$limit" "$needs" "$command"
  done
  echo "then: $PY benchmarks/gpu_check_summary.py $OUT (figure, ceiling, % of ceiling, fidelity, pass/fail)"
  exit 0
fi

mkdir -p "$OUT"
: >"$STATUS_FILE"
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit needs command <<<"$step"
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -le 0 ]; then
    printf '%s\tskipped\tthe %ss budget is spent\n' "$name" "$BUDGET" >>"$STATUS_FILE"; continue
  fi
  if [ "$needs" != "-" ] && ! "$PY" -c "import $needs" 2>/dev/null; then
    printf '%s\tskipped\tneeds the Python package %s, not installed here\n' "$name" "$needs" >>"$STATUS_FILE"; continue
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (timeout ${limit}s): $command"
  t0=$(date +%s)
  # shellcheck disable=SC2086  # the command is this script's own, split on purpose
  timeout --signal=TERM --kill-after=10 "$limit" $command >"$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%ss\n' "$name" "exit $rc" "$(( $(date +%s) - t0 ))" >>"$STATUS_FILE"
done
"$PY" benchmarks/gpu_check_summary.py "$OUT"
