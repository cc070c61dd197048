#!/usr/bin/env bash
# One device call: on an H200 the whole verify suite plus the command with --quick; on any other card only the
# command with --quick (the H100 suite is published already). Results under $OUT.
set -u
BUDGET=${BUDGET:-215}  # seconds the suite may take
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/smi.txt"
cat "$OUT/smi.txt"
if grep H200 "$OUT/smi.txt" | grep -vq NVL; then
  PYTHONPATH=. timeout $((BUDGET + 45)) python3 docs/dev/gpu_verify.py "$OUT" --budget "$BUDGET" > "$OUT/verify_log.txt" 2>&1
  echo "suite rc=$?"
fi
SECONDS=0
timeout 100 python3 -m kvcalc verify llama-3.1-8b --gpu auto --quick --json --calibration-out "$OUT/cli.yaml" \
  --raw-out "$OUT/cli-raw.json" > "$OUT/cli_quick.json" 2> "$OUT/cli_err.txt"
echo "cli rc=$? in ${SECONDS} s"
tail -3 "$OUT/cli_err.txt"
