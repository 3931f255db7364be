#!/bin/sh
# The recipe of the shipped model (saves/): run N of RESULTS.md to the end of epoch 36, then run N5, its
# continuation with more weight drop and weight decay, with the settings its checkpoint records
# (saves/ShakespeareOptimizer.npz: --epochs 44; the shipped run was stopped after epoch 41, and saves/ holds the
# best/ folder of that epoch). Expected curve: saves/training_log.csv, epoch by epoch (1: validation 3.449,
# 10: 1.485, 36: 1.402, 41: 1.3985; the last digits differ on another CPU or thread count). About 3 hours at
# 5,000 chars/s, 6 on one thread; stopped at any moment (Ctrl-C), the same command continues it.
#
#   sh recipes/shipped-model.sh                  # trains into runs/shipped-model of the clone
#   sh recipes/shipped-model.sh /data/mine       # or into the folder given
set -e
root=$(dirname "$0")/..
out=${1:-$root/runs/shipped-model}
python=${PYTHON:-python}
resume=
if [ -e "$out/ShakespeareOptimizer.npz" ]; then resume=--resume; fi
epoch=$($python -c "import json, numpy as np, sys; z = np.load(sys.argv[1], allow_pickle=False); \
print(json.loads(str(z['meta'][()]))['position']['epoch'])" "$out/ShakespeareOptimizer.npz" 2>/dev/null || echo 0)
if [ "$epoch" -lt 36 ]; then                    # run N, to the end of epoch 36
    $python "$root/_training.py" --out "$out" $resume \
        --lr 0.002 --clip 5 --dropout 0.4 --variational true --weight-drop 0.15 --weight-decay 0.05 \
        --lr-decay 0.95 --decay-after 7 --ema 0.999 --epochs 36
fi
$python "$root/_training.py" --out "$out" --resume --weight-drop 0.25 --weight-decay 0.15 \
    --lr 0.000452 --decay-after 36 --epochs 44   # run N5: 0.002 x 0.95^29 = 0.000452 in epoch 37, x0.95 after
