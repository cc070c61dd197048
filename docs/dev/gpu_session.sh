#!/usr/bin/env bash
# One device call: on an H200 the whole verify suite plus the command with --quick; on any other card the
# command with --quick and the attention bench at 1k-32k tokens (the H100 suite is published already).
# Results under $OUT.
set -u
BUDGET=${BUDGET:-215}  # seconds the suite may take
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/smi.txt"
cat "$OUT/smi.txt"
if grep H200 "$OUT/smi.txt" | grep -vq NVL; then
  PYTHONPATH=. timeout $((BUDGET + 45)) python3 docs/dev/gpu_verify.py "$OUT" --budget "$BUDGET" > "$OUT/verify_log.txt" 2>&1
  echo "suite rc=$?"
else
  PYTHONPATH=. timeout 60 python3 -c "import json, sys; from kvcalc.bench.attention import measure_attention; \
json.dump(measure_attention(32, 128, [1024, 2048, 4096, 8192, 16384, 32768], 'cuda'), sys.stdout)" \
    > "$OUT/attention.json" 2> "$OUT/attention_err.txt"
  echo "attention rc=$?"
fi
SECONDS=0
timeout 100 python3 -m kvcalc verify llama-3.1-8b --gpu auto --quick --json --calibration-out "$OUT/cli.yaml" \
  --raw-out "$OUT/cli-raw.json" > "$OUT/cli_quick.json" 2> "$OUT/cli_err.txt"
echo "cli rc=$? in ${SECONDS} s"
tail -3 "$OUT/cli_err.txt"
