#!/usr/bin/env bash
# The server's speed against `unet-industrial benchmark` in the same minutes,
# alternating round by round (this machine's speed drifts): 8 concurrent
# clients against benchmark --batch 8 (throughput), one client against
# benchmark --batch 1 (p50 latency, alternated 5 by 5). 512x512 images,
# binary KServe requests sent by bench/serve_load (128 requests from the 8
# clients, 16 each, so that the ramps at the start and the end are a small
# part of the run).
# Prints each round, with the server's images per forward pass in its
# 8-client part (from /metrics), the medians over the rounds and where a
# one-client request's time goes in the server. The figures in
# docs/serving.md come from it.
#
#   [SERVE_ARGS="--max-queue-delay-us 20000"] scripts/serve_bench.sh [BUILD_DIR] [ROUNDS (5)] [IMAGE.png]
set -euo pipefail
build=${1:-build}
rounds=${2:-5}
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
# count and exec_count from /metrics: images and forward passes so far.
passes() { curl -s "localhost:$port/metrics" | awk '/^nv_inference_count\{/{c=$2} /^nv_inference_exec_count\{/{e=$2} END{print c, e}'; }
# Requests so far and their cumulative microseconds: in all, queued, reading
# and decoding the input, the forward pass, encoding the answer.
times() {
  curl -s "localhost:$port/metrics" | awk '/^nv_inference_request_success\{/{n=$2}
    /^nv_inference_request_duration_us\{/{a=$2} /^nv_inference_queue_duration_us\{/{q=$2}
    /^nv_inference_compute_input_duration_us\{/{i=$2} /^nv_inference_compute_infer_duration_us\{/{f=$2}
    /^nv_inference_compute_output_duration_us\{/{o=$2} END{print n, a, q, i, f, o}'
}
printf "%-6s %-20s %-20s %-7s %-12s %-20s %-20s %-8s\n" round "benchmark b8 img/s" "serve 8 clients" ratio "avg batch" \
  "benchmark b1 p50 ms" "serve 1 client p50" "+ms"
: >"$work/rounds" && : >"$work/times"
for r in $(seq "$rounds"); do
  "$cli" benchmark --mode infer --batch 8 --threads 2 --iters 6 --warmup 1 --json "$work/b8.json" >/dev/null
  read -r c0 e0 < <(passes)
  "$load" --port "$port" --model m --images "$image" --clients 8 --requests 128 --report "$work/s8.json" >/dev/null
  read -r c1 e1 < <(passes)
  # One client: 5 forward passes of the benchmark, then 5 requests, 6 times
  # over, so that both sides meet the same minutes (the machine's speed moves
  # by more than the 10 ms compared within one); the medians of the six p50s.
  : >"$work/b1s" && : >"$work/s1s"
  times >>"$work/times"
  for _ in $(seq 6); do
    "$cli" benchmark --mode infer --batch 1 --threads 2 --iters 5 --warmup 1 --json "$work/b1.json" >/dev/null
    "$load" --port "$port" --model m --images "$image" --clients 1 --requests 5 --report "$work/s1.json" >/dev/null
    field "$work/b1.json" 'latency_ms["p50"]' >>"$work/b1s"
    field "$work/s1.json" 'latency_ms["p50"]' >>"$work/s1s"
  done
  times >>"$work/times"
  b8=$(field "$work/b8.json" 'images_per_s') s8=$(field "$work/s8.json" 'images_per_second')
  median() { python3 -c "import statistics, sys; print(statistics.median(float(x) for x in open(sys.argv[1])))" "$1"; }
  b1=$(median "$work/b1s") s1=$(median "$work/s1s")
  ratio=$(python3 -c "print(round($s8 / $b8, 2))") extra=$(python3 -c "print(round($s1 - $b1, 1))")
  batch=$(python3 -c "print(round(($c1 - $c0) / ($e1 - $e0), 2))")
  echo "$ratio $extra" >>"$work/rounds"
  printf "%-6s %-20.2f %-20.2f %-7s %-12s %-20.1f %-20.1f %-8s\n" "$r" "$b8" "$s8" "$ratio" "$batch" "$b1" "$s1" "$extra"
done
# Medians over the rounds: one round is at the mercy of a minute's drift.
# Then where a one-client request's time went in the server (means over
# every one-client request, from the counters before and after each part).
python3 - "$work/rounds" "$work/times" <<'PY'
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
print(f"median: 8 clients / benchmark b8 = {statistics.median(r[0] for r in rows):.2f}; "
      f"1 client p50 - benchmark b1 p50 = {statistics.median(r[1] for r in rows):+.1f} ms")
t = [list(map(float, line.split())) for line in open(sys.argv[2])]
d = [sum(after[k] - before[k] for before, after in zip(t[0::2], t[1::2])) for k in range(6)]
n, total, queue, inp, forward, out = d[0], *(v / d[0] / 1000 for v in d[1:])
print(f"one client, a request's mean in the server over {n:.0f}: {total:.2f} ms = queue {queue:.2f} + input {inp:.2f}"
      f" + forward {forward:.2f} + output {out:.2f} + the rest {total - queue - inp - forward - out:.2f}")
PY
