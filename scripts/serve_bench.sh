#!/usr/bin/env bash
# The server's speed against `unet-industrial benchmark` in the same minutes,
# alternating round by round (this machine's speed drifts): 8 concurrent
# clients against benchmark --batch 8 (throughput), one client against
# benchmark --batch 1 (p50 latency). 512x512 images, binary KServe requests
# sent by bench/serve_load. The figures in docs/serving.md come from it.
#
#   [SERVE_ARGS="--max-queue-delay-us 20000"] scripts/serve_bench.sh [BUILD_DIR] [ROUNDS] [IMAGE.png]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
cli=$build/bin/unet-industrial
load=$build/bin/serve_load
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

image=${3:-}
if [[ -z $image ]]; then  # a generated 512x512 image when none is given
  "$cli" synth --out "$work/data" --class 1 --size 512 --train-defective 1 --train-ok 0 --test-defective 1 \
    --test-ok 0 >/dev/null
  image=$(ls "$work"/data/Class1/Test/*.PNG | head -1)
fi
"$cli" init --out "$work/m.safetensors" --seed 1 >/dev/null
# shellcheck disable=SC2086  # SERVE_ARGS is a list of options
"$cli" serve --model "m=$work/m.safetensors" --port 0 --threads 2 ${SERVE_ARGS:-} >"$work/port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q listening "$work/port" && break; sleep 0.2; done
port=$(grep -o '[0-9]*$' "$work/port")

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }
printf "%-6s %-28s %-28s %-26s %-26s\n" round "benchmark b8 img/s" "serve 8 clients img/s" "benchmark b1 p50 ms" "serve 1 client p50 ms"
for r in $(seq "$rounds"); do
  "$cli" benchmark --mode infer --batch 8 --threads 2 --iters 6 --warmup 1 --json "$work/b8.json" >/dev/null
  "$load" --port "$port" --model m --images "$image" --clients 8 --requests 64 --report "$work/s8.json" >/dev/null
  "$cli" benchmark --mode infer --batch 1 --threads 2 --iters 20 --warmup 2 --json "$work/b1.json" >/dev/null
  "$load" --port "$port" --model m --images "$image" --clients 1 --requests 30 --report "$work/s1.json" >/dev/null
  printf "%-6s %-28s %-28s %-26s %-26s\n" "$r" "$(field "$work/b8.json" 'round(images_per_s, 2)')" \
    "$(field "$work/s8.json" 'round(images_per_second, 2)')" "$(field "$work/b1.json" 'round(latency_ms["p50"], 1)')" \
    "$(field "$work/s1.json" 'round(latency_ms["p50"], 1)')"
done
echo "server's average batch: $(curl -s "localhost:$port/metrics" | awk '/^nv_inference_count\{/{c=$2} /^nv_inference_exec_count\{/{e=$2} END{printf "%.2f images per forward pass", c/e}')"
