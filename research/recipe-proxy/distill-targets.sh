#!/usr/bin/env bash
# distill-targets.sh ZIP OUT [EPOCHS]: which teacher targets help a student (after distill.sh found that
# the teachers' probabilities of their own training images do not). Phase 1, at once: two teachers on all
# training images, four fold teachers (each without one quarter) and the control student (seed 5, no
# teachers). Phase 2, students (seed 5) from: the fold teachers' out-of-fold probabilities (cached once,
# as fer distill could), the two teachers on each augmented batch (online: a forward pass of each per
# step), and the two teachers' cached probabilities (what fer distill does). OUT/results.jsonl.
set -euo pipefail
zip="$(realpath "$1")"; out="$(mkdir -p "$2" && realpath "$2")"; epochs="${3:-40}"
. "$(dirname "$0")/../lib.sh"   # enters the repository root
cd research/recipe-proxy
start_mps
base="crop=44+erase=0.25"
run() { OMP_NUM_THREADS=1 timeout 400 python3 proxy.py --zip "$zip" --epochs "$epochs" --out "$out/results.jsonl" "$@" >> "$out/log.txt" 2>&1; }
for s in 1 2; do run --variant "$base+seed=$s" --save-probs "$out/t$s.npz" --save-model "$out/t$s.pt" & done
for k in 0 1 2 3; do run --variant "$base+seed=1$k+fold=$k" --fold "$k/4" --save-probs "$out/f$k.npz" & done
run --variant "$base+seed=5+control" &
wait
oof="$out/f0.npz,$out/f1.npz,$out/f2.npz,$out/f3.npz"
run --variant "$base+kd=0.5+T=1+seed=5+oof" --teachers "$oof" --oof &
run --variant "$base+kd=0.8+T=2+seed=5+oof" --teachers "$oof" --oof &
run --variant "$base+kd=0.5+T=1+seed=5+online" --online "$out/t1.pt,$out/t2.pt" &
run --variant "$base+kd=0.8+T=2+seed=5+online" --online "$out/t1.pt,$out/t2.pt" &
run --variant "$base+kd=0.5+T=1+seed=5+cached" --teachers "$out/t1.npz,$out/t2.npz" &
wait
