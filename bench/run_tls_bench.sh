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

# A time limit well above what the runs, their warm-ups and start-up take.
bench/run_in_bench_ns.sh tlsbench $((secs * 12 + 300)) "$PWD/build/release" tls_bench.py "$secs"
