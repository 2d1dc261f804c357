#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz: each on its corpus for SECONDS (default 3600) of CPU
# time, so that an hour is an hour of fuzzing however busy the machine is (a run is also stopped
# after 4 x SECONDS of wall time; the CPU seconds it had are recorded).
#
#   tests/fuzz/run.sh [--target NAME]... [--build DIR] [--jobs N] [SECONDS]
#
# Every target, or those named, N at a time (default 1).
# Builds DIR (default build/fuzz) with clang-16 if it holds no fuzzers yet. New inputs go to
# DIR/fuzz-work/NAME, which persists between runs so long runs add up; the seeds in
# tests/fuzz/corpus/NAME are read but never written. A finding is saved as
# DIR/fuzz-artifacts/NAME-crash-... and fails the run; copy it into the corpus with the fix.
# Each run appends a line to DIR/fuzz-runs.tsv: date, target, CPU seconds, executions, coverage
# (edges), features, corpus size, result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build/fuzz
targets=()
jobs=1
seconds=3600
while [ $# -gt 0 ]; do
  case $1 in
    --target) targets+=("$2"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) seconds=$1; shift ;;
  esac
done
case $seconds in ''|*[!0-9]*) echo "run.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2 ;; esac

if [ ! -d "$build" ] || ! ls "$build"/tests/fuzz/fuzz_* >/dev/null 2>&1; then
  CC=clang-16 CXX=clang++-16 cmake -S "$root" -B "$build" -G Ninja -DAIRLOCK_FUZZ=ON >/dev/null
  cmake --build "$build" --target fuzzers
fi

if [ ${#targets[@]} -eq 0 ]; then
  for f in "$here"/*_fuzzer.cc; do n=$(basename "$f" _fuzzer.cc); targets+=("$n"); done
fi

run_one() {  # run_one NAME
  local name=$1 bin=$build/tests/fuzz/fuzz_$1 seeds=$here/corpus/$1
  local work=$build/fuzz-work/$1 artifacts=$build/fuzz-artifacts log
  [ -x "$bin" ] || { echo "run.sh: no fuzzer $bin" >&2; return 2; }
  [ -d "$seeds" ] || { echo "run.sh: no corpus $seeds" >&2; return 2; }
  mkdir -p "$work" "$artifacts"
  log=$(mktemp)
  local rc=0 pid cpu=0 interrupted=0 tick
  tick=$(getconf CLK_TCK)
  # -timeout counts wall seconds for one input: 600 leaves room for a run at nice 19 while the
  # machine builds (at 30, a starved input was once reported as a hang).
  "$bin" -max_total_time=$((seconds * 4)) -timeout=600 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$work" "$seeds" >"$log" 2>&1 &
  pid=$!
  # Poll the fuzzer's user + system time (fields 14 and 15 of /proc/PID/stat) until it has had
  # its SECONDS; SIGINT makes libFuzzer print its final stats and exit with 72.
  while kill -0 "$pid" 2>/dev/null; do
    cpu=$(awk -v t="$tick" '{print int(($14 + $15) / t)}' "/proc/$pid/stat" 2>/dev/null) || break
    if [ "${cpu:-0}" -ge "$seconds" ]; then interrupted=1; kill -INT "$pid"; break; fi
    sleep 1
  done
  wait "$pid" || rc=$?
  [ "$interrupted" -eq 1 ] && [ "$rc" -eq 72 ] && rc=0
  local execs cov ft corp result
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  result=ok
  if [ "$rc" -ne 0 ]; then
    result=FINDING
    tail -60 "$log" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "${cpu:-?}" "${execs:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" | tee -a "$build/fuzz-runs.tsv"
  rm -f "$log"
  return "$rc"
}
export -f run_one
export build here seconds

status=0
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}' || status=$?
exit "$status"
