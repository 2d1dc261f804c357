#!/usr/bin/env bash
# Runs a namespaced bench (tls_bench.py, credential_bench.py) in a network namespace of its own
# (loopback only), with a temporary directory, both removed however the run ends; INT and TERM
# reach the Python side, which stops what it started (bench_harness.py).
#   bench/run_in_bench_ns.sh NAME TIMEOUT_SECONDS BUILD_DIR SCRIPT [ARGS...]
set -euo pipefail
name=$1 limit=$2 build=$3 script=$4
shift 4
ns="al-$name-$$-$RANDOM"
tmp="$(mktemp -d "/tmp/airlock-$name-XXXXXX")"
cleanup() {
  # Whatever is still in the namespace (a helper orphaned by a crash) was started by this run.
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
# In the background so that INT and TERM reach it.
AIRLOCK_BUILD="$build" AIRLOCK_SOURCE="$PWD" AIRLOCK_BENCH_TMP="$tmp" \
  AIRLOCK_OUTER_NS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)" \
  PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" timeout -k 10 "$limit" /usr/bin/python3 "bench/$script" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 143' INT TERM
wait "$child"
