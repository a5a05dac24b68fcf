#!/usr/bin/env bash
# distill.sh ZIP OUT [PHASE_S] [MAX_EPOCHS]: fer distill's recipe in the GPU proxy (proxy.py). Four teachers
# (crop 44 + erasing 0.25, seeds 1-4) train at once, then six students learn from the teachers' averaged
# ten-crop probabilities of the training images at several (weight, temperature), one without teachers
# as the control. Every run gets the same epochs: what fits PHASE_S seconds at six at once, measured
# first. OUT/results.jsonl: each run's validation accuracy; OUT/ensemble.json: the teachers' ensemble.
# Used on a lent GPU machine to choose distill.weight and distill.temperature for the CPU; never part of
# fer's runtime or CI.
set -euo pipefail
zip="$(realpath "$1")"; out="$(mkdir -p "$2" && realpath "$2")"; phase="${3:-170}"; max="${4:-58}"
. "$(dirname "$0")/../lib.sh"   # enters the repository root
cd research/recipe-proxy
start_mps
base="crop=44+erase=0.25"
run() { OMP_NUM_THREADS=1 timeout "$1" python3 proxy.py --zip "$zip" "${@:2}" >> "$out/log.txt" 2>&1; }
for i in 1 2 3 4 5 6; do run 120 --variant "$base+seed=$i" --epochs 2 --calibrate --out "$out/calib.jsonl" & done
wait
epochs=$(python3 -c "import json; w = max(json.loads(l)['sec_per_epoch'] for l in open('$out/calib.jsonl')); print(max(4, min($max, int($phase / w))))")
echo "epochs $epochs"
teachers=""
for s in 1 2 3 4; do
    run $((phase + 120)) --variant "$base+seed=$s" --epochs "$epochs" --out "$out/results.jsonl" --save-probs "$out/teacher$s.npz" &
    teachers="$teachers${teachers:+,}$out/teacher$s.npz"
done
wait
python3 - "$out" <<'PY' | tee "$out/ensemble.json"
import json, sys, numpy as np
d = [np.load(f"{sys.argv[1]}/teacher{s}.npz") for s in (1, 2, 3, 4)]
acc = lambda p: float((p.argmax(1) == d[0]["yv"]).mean())
print(json.dumps(dict(members=[acc(x["val"]) for x in d], ensemble2=acc(d[0]["val"] + d[1]["val"]),
                      ensemble4=acc(sum(x["val"] for x in d)))))
PY
for v in "kd=0.5+T=1" "kd=0.5+T=4" "kd=0.8+T=2" "kd=0.9+T=4" "kd=1+T=1" "kd=0"; do
    run $((phase + 120)) --variant "$base+$v+seed=5" --epochs "$epochs" --out "$out/results.jsonl" --teachers "$teachers" &
done
wait
