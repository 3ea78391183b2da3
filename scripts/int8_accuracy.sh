#!/usr/bin/env bash
# INT8 against fp32 on synthetic classes trained with the demo recipe:
# Dice@0.5 over all and over the defective Test images, and the image-level
# decisions at 0.5 (the figures in docs/performance.md).
#
#   scripts/int8_accuracy.sh [BUILD_DIR] CLASS...     e.g. scripts/int8_accuracy.sh build 1 2 3
set -euo pipefail
build=${1:-build}
shift
cli=$build/bin/unet-industrial
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for c in "$@"; do
  d=$work/c$c
  "$cli" synth --out "$d/data" --class "$c" --size 128 --train-defective 80 --train-ok 80 --test-defective 40 \
    --test-ok 160 --seed 0 >/dev/null
  "$cli" train --data "$d/data" --class "$c" --steps 500 --batch 8 --image-size 128 --lr 3e-4 --lr-decay-factor 0.8 \
    --lr-decay-steps 200 --threads 2 --out "$d/run" >"$d/train.log" 2>&1
  "$cli" calibrate --model "$d/run/model.safetensors" --data "$d/data" --class "$c" --image-size 128 \
    --out "$d/int8.safetensors" >/dev/null
  "$cli" evaluate --data "$d/data" --class "$c" --model "$d/run/model.safetensors" --image-size 128 --threads 2 \
    --json "$d/fp32.json" >/dev/null
  "$cli" evaluate --data "$d/data" --class "$c" --model "$d/int8.safetensors" --image-size 128 --threads 2 \
    --precision int8 --json "$d/int8.json" >/dev/null
  python3 - "$d" "$c" <<'PY'
import json, sys
d, c = sys.argv[1], sys.argv[2]
f, q = (json.load(open(f"{d}/{p}.json")) for p in ("fp32", "int8"))
half = lambda j: next(t for t in j["thresholds"] if abs(t["threshold"] - 0.5) < 1e-6)
hf, hq = half(f), half(q)
fs = {r["file"]: r["score"] > 0.5 for r in f["images"]}
qs = {r["file"]: r["score"] > 0.5 for r in q["images"]}
same = sum(fs[k] == qs[k] for k in fs)
print(f"| {c} | {hf['dice_all']:.4f} | {hq['dice_all']:.4f} | {hq['dice_all'] - hf['dice_all']:+.4f} | "
      f"{hf['dice_defective']:.4f} | {hq['dice_defective']:.4f} | {hq['dice_defective'] - hf['dice_defective']:+.4f} | "
      f"{same}/{len(fs)} |")
PY
done
