#!/usr/bin/env bash
# fp32, bf16 and int8 inference in turn, round by round (this machine's speed
# drifts): `unet-industrial benchmark` at batch 8 and batch 1, 512x512, 2
# threads. MODEL should carry an int8 calibration (`calibrate`); without one
# benchmark calibrates int8 on its own input. The figures in
# docs/performance.md's INT8 section come from it.
#
#   scripts/precision_bench.sh [BUILD_DIR] [MODEL] [ROUNDS]
set -euo pipefail
cli=${1:-build}/bin/unet-industrial
model=${2:-}
rounds=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=()
[[ -n $model ]] && args=(--model "$model")
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for batch in 8 1; do
    for p in fp32 bf16 int8; do
      "$cli" benchmark --mode infer --batch "$batch" --threads 2 --iters $((batch == 8 ? 8 : 20)) --warmup 2 \
        --precision "$p" "${args[@]}" --json "$work/b.json" >/dev/null 2>&1
      python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(f'round $r batch $batch $p', round(j['images_per_s'], 2), 'img/s, p50', round(j['latency_ms']['p50'], 1), 'ms, peak', round(j['peak_rss_mb']), 'MB')" "$work/b.json"
    done
  done
done
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
