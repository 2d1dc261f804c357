#!/usr/bin/env bash
# Side-by-side proxy benchmarks: airlock-gateway (1 and 2 workers), squid, tinyproxy and, for
# tunnels, haproxy in TCP mode, against a direct baseline, in one run, in a network namespace of
# its own (loopback only), proxies pinned to CPU 0 and the load to CPU 1, reported as ratios.
#   bench/run_proxy_bench.sh [SECONDS_PER_RUN [--profile DIR]]   (default 5; --profile: perf
#   and flame graphs of airlock instead, see run_profile.sh)
# Installs the peers with scripts/setup.sh bench; builds the release tree first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build test bench
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release >/dev/null
ns="al-bench-$$-$RANDOM"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
AIRLOCK_BUILD="$PWD/build/release" AIRLOCK_SOURCE="$PWD" PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" /usr/bin/python3 bench/proxy_bench.py "${1:-5}" "${@:2}"
