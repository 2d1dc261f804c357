#!/usr/bin/env bash
# Runs a demo (gateway_demo.py or vm_demo.py) in a network namespace of its own (no route out),
# removed afterwards.
set -euo pipefail
build=$1
src=$2
script=${3:-gateway_demo.py}
ns="al-demo-$$-$RANDOM"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 169.254.169.254/32 dev lo
AIRLOCK_BUILD="$build" AIRLOCK_SOURCE="$src" PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" /usr/bin/python3 "$src/scripts/demo/$script"
