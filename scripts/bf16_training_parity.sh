#!/bin/bash
# bf16 training against fp32: the demo's recipe (128x128, batch 8, 500 steps,
# lr 3e-4 x 0.8 every 200 steps) on synthetic classes, once in each
# precision, each model evaluated in the precision it was trained in. Prints
# the Test score (mean Dice at 0.5 over all Test images, SPEC.md section 4)
# of both and their difference. docs/performance.md has the measured table.
#
#   scripts/bf16_training_parity.sh WORKDIR [CLASS ...]    (default classes: 1 2 6)
set -euo pipefail
cli="$(cd "$(dirname "$0")/.." && pwd)/build/bin/unet-industrial"
[ -x "$cli" ] || { echo "build first: $cli is missing" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR [CLASS ...]" >&2; exit 2; }
work="$1"; shift
classes=("${@:-1 2 6}")
mkdir -p "$work"

score() {  # Test score at threshold 0.5 from `evaluate --json`
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(t["dice_all"] for t in r["thresholds"] if t["threshold"]==0.5))' "$1"
}

declare -A s
printf "%-6s %-10s %-10s %s\n" class fp32 bf16 "bf16-fp32"
for c in ${classes[*]}; do
  "$cli" synth --out "$work/data" --class "$c" --size 128 --train-defective 80 --train-ok 80 \
      --test-defective 40 --test-ok 160 --seed 0 >/dev/null
  for p in fp32 bf16; do
    run="$work/class${c}_$p"
    "$cli" train --data "$work/data" --class "$c" --out "$run" --steps 500 --batch 8 --image-size 128 \
        --lr 3e-4 --lr-decay-steps 200 --lr-decay-factor 0.8 --seed 0 --precision "$p" \
        --display-every 100 >"$run.log" 2>&1
    "$cli" evaluate --data "$work/data" --class "$c" --model "$run/model.safetensors" --image-size 128 \
        --precision "$p" --json "$run.eval.json" >/dev/null
    s[$p]=$(score "$run.eval.json")
  done
  printf "%-6s %-10.4f %-10.4f %+.4f\n" "$c" "${s[fp32]}" "${s[bf16]}" "$(python3 -c "print(${s[bf16]}-${s[fp32]})")"
done
