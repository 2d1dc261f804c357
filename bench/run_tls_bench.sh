#!/usr/bin/env bash
# TLS inspection side by side: airlock-gateway (a rule with `inspect: true`), mitmproxy and squid
# with ssl-bump against direct HTTPS, in one run, in a network namespace of its own (loopback
# only), reported as ratios. See bench/README.md ("TLS inspection").
#   bench/run_tls_bench.sh [SECONDS]   (per target and mode, split into 5 interleaved rounds;
#                                     default 10; as root)
# Installs the peers and hey with scripts/setup.sh bench; builds the release gateway first.
# Everything it starts runs in the namespace and is ended, and its temporary directory removed,
# however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
[ "$secs" -ge 5 ] && [ "$secs" -le 120 ] || { echo "$0: 5 to 120 seconds" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespace)" >&2; exit 1; }
scripts/setup.sh build test bench
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target airlock-gateway >/dev/null
if awk '{exit !($1 > 1.5)}' /proc/loadavg; then
  echo "warning: load average $(cut -d' ' -f1 /proc/loadavg): figures will be low" >&2
fi

ns="al-tlsbench-$$-$RANDOM"
tmp="$(mktemp -d /tmp/airlock-tls-bench-XXXXXX)"
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
# 5 targets, 9 runs of SECONDS, warm-ups and start-up: bounded well within this. In the
# background so that INT and TERM reach it (the Python side stops what it started).
AIRLOCK_BUILD="$PWD/build/release" AIRLOCK_SOURCE="$PWD" AIRLOCK_BENCH_TMP="$tmp" \
  AIRLOCK_OUTER_NS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)" \
  PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" timeout -k 10 $((secs * 12 + 300)) /usr/bin/python3 bench/tls_bench.py "$secs" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 143' INT TERM
wait "$child"
