#!/usr/bin/env bash
# MicroVM timings: cold, restored and pooled create-to-ready, exec round trip and teardown, idle
# and busy; RSS/PSS per VM at 20 VMs; resume from standby; the curve past the pool. The launcher's own work
# apart from the guest's boot. Measured and printed, never asserted. Runs the real gateway and
# vmlaunch in a network namespace of its own (removed afterwards); needs the release build and
# a guest image (`vmlaunch image build`). Usage: bench/vm_bench.sh [BOOTS] [EXECS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$PWD/build/release
ns="al-vmbench-$$-$RANDOM"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
AIRLOCK_BUILD="$build" AIRLOCK_SOURCE="$PWD" PYTHONDONTWRITEBYTECODE=1 \
  ip netns exec "$ns" /usr/bin/python3 bench/vm_bench.py "${1:-5}" "${2:-20}"
