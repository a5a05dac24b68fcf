#!/usr/bin/env bash
# run.sh ZIP LIST OUT [BUDGET_S]: the recipe proxy on one CUDA GPU (see proxy.py). LIST has lines
# "EPOCHS VARIANT" (epochs matched to the variant's CPU cost, e.g. 50 base / 72 crop=40). All variants run
# at once (MPS if available); each is first timed under that concurrency, then every epoch count is scaled
# by one factor so the slowest ends inside BUDGET_S (the CPU-cost ratios stay). Results: OUT/results.jsonl.
# Used on a lent GPU machine to choose what to try on the CPU; never part of fer's runtime or CI.
set -euo pipefail
zip="$(realpath "$1")"; list="$(realpath "$2")"; out="$(mkdir -p "$3" && realpath "$3")"; budget="${4:-420}"
. "$(dirname "$0")/../lib.sh"   # enters the repository root
cd research/recipe-proxy
start_mps
while read -r ep v; do
    OMP_NUM_THREADS=1 timeout 150 python3 proxy.py --zip "$zip" --variant "$v" --epochs "$ep" --calibrate --out "$out/calib.jsonl" >> "$out/log.txt" 2>&1 &
done < "$list"
wait
scale=$(python3 - "$list" "$out/calib.jsonl" "$budget" <<'PY'
import json, sys
ep = {l.split()[1]: int(l.split()[0]) for l in open(sys.argv[1]) if l.strip()}
worst = max(ep[c["variant"]] * c["sec_per_epoch"] for c in map(json.loads, open(sys.argv[2])))
print(min(1.0, float(sys.argv[3]) / worst))
PY
)
echo "epoch scale $scale"
while read -r ep v; do
    e=$(python3 -c "print(max(4, round($ep * $scale)))")
    OMP_NUM_THREADS=1 timeout $((budget + 60)) python3 proxy.py --zip "$zip" --variant "$v" --epochs "$e" --out "$out/results.jsonl" >> "$out/log.txt" 2>&1 &
done < "$list"
wait
