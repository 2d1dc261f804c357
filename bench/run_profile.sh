#!/usr/bin/env bash
# Where airlock-gateway's CPU goes: perf samples of the gateway (1 worker) under the proxy
# bench's keep-alive load, connection churn and bulk tunnel, drawn as flame graphs with a text
# summary in bench/profiles/ (airlock-{keepalive,churn,tunnel}.{svg,txt}). Same namespace,
# upstream and pinning as run_proxy_bench.sh.
#   bench/run_profile.sh [SECONDS]        (default 5; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build test bench
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release >/dev/null
ns="al-prof-$$-$RANDOM"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p bench/profiles
AIRLOCK_BUILD="$PWD/build/release" AIRLOCK_SOURCE="$PWD" PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" /usr/bin/python3 bench/proxy_bench.py "${1:-5}" --profile "$PWD/bench/profiles"
