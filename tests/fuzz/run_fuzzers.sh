#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer harness built in BUILD_DIR (build-fuzz/)
# for SECONDS, FUZZ_JOBS of them at a time (default 1; `make fuzz` passes
# its JOBS, one a core), then prints one line per harness: the
# seconds it ran and the CPU seconds it had (less on a busy machine),
# executions, coverage (libFuzzer's edges "cov" and features "ft"), corpus
# size and the outcome. Corpora grow across runs in BUILD_DIR/fuzz/corpus/;
# seeds (seed_corpora.py) are made afresh each time. A crash, leak, timeout
# or out-of-memory leaves its input in BUILD_DIR/fuzz/artifacts/<harness>/
# and makes the exit code 1: fix it, and add the input to
# tests/fuzz/regressions/<harness>/ so that `make test` replays it.
#
#   run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]   (default: every harness)
set -uo pipefail
build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
work=$build/fuzz
python3 "$here/seed_corpora.py" "$work/seeds" || exit 1
if [[ $# -gt 0 ]]; then
  names=("$@")
else
  mapfile -t names < <(cd "$build/bin" && ls fuzz_* | sed 's/^fuzz_//')
fi

report=$work/report.txt
: >"$report"

# fuzz_one NAME: runs one harness and appends its line to the report;
# its exit status says whether it found anything.
fuzz_one() {
  local name=$1 corpus=$work/corpus/$1 artifacts=$work/artifacts/$1/ log=$work/$1.log
  mkdir -p "$corpus" "$artifacts"
  local dict=()
  [[ -f $here/dicts/$name.dict ]] && dict=(-dict="$here/dicts/$name.dict")
  echo "=== fuzz: $name for ${seconds} s (log: $log)"
  local start=$SECONDS rc
  # bash's `time` gives the fuzzer's user + system seconds.
  TIMEFORMAT='%U %S'
  { time "$build/bin/fuzz_$name" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$artifacts" "${dict[@]}" "$corpus" "$work/seeds/$name" >"$log" 2>&1; } 2>"$work/$name.cpu"
  rc=$?
  local cpu execs status outcome=ok
  cpu=$(awk '{ printf "%d", $1 + $2 }' "$work/$name.cpu")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  status=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+')
  if [[ $rc -ne 0 ]]; then
    outcome="FAILED (exit $rc): $(ls "$artifacts" | tr '\n' ' ')"
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|fuzz finding' "$log" >&2
  fi
  printf '%-14s %5d s  %5d s CPU  %10s execs  %s  %s\n' "$name" $((SECONDS - start)) "$cpu" "${execs:-?}" \
    "${status:-?}" "$outcome" | tee -a "$report"
  return $((rc != 0))
}

jobs=${FUZZ_JOBS:-1}
failed=0
running=0
for name in "${names[@]}"; do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$name" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
echo "=== fuzz: summary in $report"
exit $failed
