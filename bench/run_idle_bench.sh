#!/usr/bin/env bash
# Idle memory per connection: N idle tunnels and N idle inspected connections held by
# airlock-gateway and by haproxy, in a network namespace of its own (loopback only), reported as
# KiB per connection and ratios. See bench/README.md ("Idle memory").
#   bench/run_idle_bench.sh [N]   (default 10000; as root)
# Installs haproxy with scripts/setup.sh; builds the release gateway first. Everything it starts
# runs in the namespace and is ended, and its temporary directory removed, however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
case "$n" in ''|*[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
[ "$n" -ge 100 ] && [ "$n" -le 50000 ] || { echo "$0: N from 100 to 50000" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespace)" >&2; exit 1; }
scripts/setup.sh build test bench
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target airlock-gateway >/dev/null
ulimit -n "$(ulimit -Hn)"  # the bench holds 2 x N sockets; the gateway raises its own limit
bench/run_in_bench_ns.sh idlebench $((n / 20 + 600)) "$PWD/build/release" idle_bench.py "$n"
