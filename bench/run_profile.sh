#!/usr/bin/env bash
# Where airlock-gateway's CPU goes: perf samples of the gateway (1 worker) under the proxy
# bench's keep-alive load, connection churn and bulk tunnel, drawn as flame graphs with a text
# summary in bench/profiles/ (airlock-{keepalive,churn,tunnel}.{svg,txt}). Same namespace,
# upstream and pinning as run_proxy_bench.sh, which it runs in its profile mode.
#   bench/run_profile.sh [SECONDS]        (default 5; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/profiles
exec bench/run_proxy_bench.sh "${1:-5}" --profile "$PWD/bench/profiles"
