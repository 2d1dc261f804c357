#!/usr/bin/env bash
# Issue 14's one run: every gateway benchmark back to back on one machine, so that each target
# is judged from the same run (bench/README.md, "Where issue 14's targets stand"):
#   1. run_proxy_bench.sh     keep-alive, churn, tunnels, 1 and 2 workers, p99 at half load
#   2. run_idle_bench.sh      idle tunnels and inspected connections (as many as descriptors allow)
#   3. run_tls_bench.sh       inspected HTTPS and handshakes vs mitmproxy and squid ssl-bump
#   4. leaf_mint_bench        leaf certificate minting
#   5. run_profile.sh         flame graphs of the gateway in bench/profiles/
#   bench/run_gateway_benches.sh [OUT]     (as root; OUT: where the output is kept, default
#                                           bench-run-<date>.txt in the current directory)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$PWD/bench-run-$(date -u +%Y%m%dT%H%M%SZ).txt}"
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 1; }
# Idle connections: 10,000 of each, or as many as this machine's open-file limit allows (the
# bench holds both ends of every tunnel; the proxies two descriptors each).
hard=$(ulimit -Hn)
n=$(( (hard - 2000) / 2 ))  # haproxy wants 2 x (N + 500) and a few
[ "$n" -gt 10000 ] && n=10000
{
  echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo; echo "## run_proxy_bench.sh 5"; bench/run_proxy_bench.sh 5
  echo; echo "## run_idle_bench.sh $n"; bench/run_idle_bench.sh "$n"
  echo; echo "## run_tls_bench.sh 10"; bench/run_tls_bench.sh 10
  echo; echo "## leaf_mint_bench"; build/release/bench/leaf_mint_bench
  echo; echo "## run_profile.sh 5"; bench/run_profile.sh 5
} 2>&1 | tee "$out"
echo "kept in $out"
