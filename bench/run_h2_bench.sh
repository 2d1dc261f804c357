#!/usr/bin/env bash
# HTTP/2 through TLS inspection: h2load through airlock-gateway against h2load directly at the
# upstream, in one run, in a network namespace of its own (loopback only), reported as ratios.
# See bench/README.md ("HTTP/2").
#   bench/run_h2_bench.sh [SECONDS]   (per target and shape, split into 3 interleaved rounds;
#                                    default 9; as root)
# Installs h2load, haproxy and socat with scripts/setup.sh; builds the release gateway first.
# Everything it starts runs in the namespace and is ended, and its temporary directory removed,
# however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-9}"
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
[ "$secs" -ge 3 ] && [ "$secs" -le 120 ] || { echo "$0: 3 to 120 seconds" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespace)" >&2; exit 1; }
scripts/setup.sh build test bench
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target airlock-gateway >/dev/null
if awk '{exit !($1 > 1.5)}' /proc/loadavg; then
  echo "warning: load average $(cut -d' ' -f1 /proc/loadavg): figures will be low" >&2
fi
bench/run_in_bench_ns.sh h2bench $((secs * 8 + 300)) "$PWD/build/release" h2_bench.py "$secs"
