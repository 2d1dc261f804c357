#!/usr/bin/env bash
# Credential injection's cost per inspected request: two airlock-gateways side by side in one run,
# the same rule with and without a bound static credential, in a network namespace of its own
# (loopback only), reported as a ratio. See bench/README.md ("Credential injection and leak
# scanning").
#   bench/run_credential_bench.sh [SECONDS]   (per gateway, split into 10 rounds; default 30;
#                                            as root)
# Builds the gateway in build/release (AIRLOCK_BENCH_BUILD=DIR: an existing build directory
# instead). Installs haproxy and hey with scripts/setup.sh bench. Everything it starts runs in the
# namespace and is ended, and its temporary directory removed, however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
[ "$secs" -ge 10 ] && [ "$secs" -le 300 ] || { echo "$0: 10 to 300 seconds" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespace)" >&2; exit 1; }
scripts/setup.sh build test bench
build="${AIRLOCK_BENCH_BUILD:-build/release}"
if [ -z "${AIRLOCK_BENCH_BUILD:-}" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target airlock-gateway >/dev/null
build="$(cd "$build" && pwd)"
if awk '{exit !($1 > 1.5)}' /proc/loadavg; then
  echo "warning: load average $(cut -d' ' -f1 /proc/loadavg): figures will be noisy" >&2
fi

# A time limit well above what the runs, their warm-ups and start-up take.
bench/run_in_bench_ns.sh credbench $((secs * 3 + 300)) "$build" credential_bench.py "$secs"
