#!/usr/bin/env bash
# The server's resident memory with several models: MODELS models made by
# `init` (calibrated first for int8), served at 512x512 with --max-batch 8
# and 2 threads; prints the time from start to listening and VmRSS / VmHWM
# after loading and after 24 requests from 8 concurrent clients to each
# model (bench/serve_load), with the images a forward pass took. The
# figures in docs/serving.md come from it.
#
#   scripts/serve_memory.sh CLI [MODELS (1)] [PRECISION (fp32)]
#   (LOAD=path/to/serve_load where it is not beside CLI)
set -euo pipefail
cli=$1
models=${2:-1}
precision=${3:-fp32}
load=${LOAD:-$(dirname "$cli")/serve_load}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

"$cli" synth --out "$work/data" --class 1 --size 512 --train-defective 1 --train-ok 1 --test-defective 1 \
  --test-ok 0 >/dev/null
image=$(ls "$work"/data/Class1/Test/*.PNG | head -1)
args=()
for i in $(seq "$models"); do
  "$cli" init --out "$work/m$i.safetensors" --seed "$i" >/dev/null
  if [[ $precision == int8 ]]; then
    "$cli" calibrate --model "$work/m$i.safetensors" --data "$work/data" --class 1 --split Train --image-size 512 \
      --out "$work/m$i.safetensors" >/dev/null
  fi
  args+=(--model "m$i=$work/m$i.safetensors")
done
start=$(date +%s.%N)
"$cli" serve "${args[@]}" --port 0 --threads 2 --max-batch 8 --precision "$precision" >"$work/port" 2>"$work/log" &
server=$!
for _ in $(seq 1200); do grep -q listening "$work/port" && break; sleep 0.1; done
listening=$(date +%s.%N)
port=$(grep -o '[0-9]*$' "$work/port")
memory() { awk '/VmRSS|VmHWM/{printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$server/status"; }
echo "$models model(s), $precision: $(echo "$listening - $start" | bc) s to listening; after loading: $(memory)"
for i in $(seq "$models"); do
  "$load" --port "$port" --model "m$i" --images "$image" --clients 8 --requests 24 --report "$work/report.json" >/dev/null
done
batch=$(curl -s "localhost:$port/metrics" |
  awk '/^nv_inference_count\{/{c += $2} /^nv_inference_exec_count\{/{e += $2} END{printf "%.2f", c / e}')
echo "after 24 requests from 8 clients to each: $(memory); images a pass: $batch"
