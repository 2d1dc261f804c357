#!/usr/bin/env bash
# Runs the integration tests inside a network namespace made for this run: loopback, plus a
# dummy interface that carries the addresses attacks aim at (each with a canary listener, set up
# by the tests). The namespace has no route out, so a bug trips a canary instead of sending
# traffic off the machine. The namespace is removed even when the tests fail.
set -euo pipefail
build=$1
src=$2
shift 2
ns="al-it-$$-$RANDOM"
cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
# The canary addresses go on a dummy interface; kernels without the dummy driver get them on the
# namespace's own loopback, which keeps them just as local to the namespace.
dev=alcanary0
if ! ip -n "$ns" link add "$dev" type dummy 2>/dev/null; then
  dev=lo
fi
ip -n "$ns" link set "$dev" up
for a in 169.254.169.254/32 169.254.170.2/32 10.0.0.1/32 192.168.0.1/32 172.16.0.1/32 \
         100.64.0.1/32 100.100.100.200/32 192.0.0.192/32; do
  ip -n "$ns" addr add "$a" dev "$dev"
done
for a in fd00:ec2::254/128 fd12::1/128; do
  ip -n "$ns" addr add "$a" dev "$dev" nodad
done
export AIRLOCK_BUILD="$build" AIRLOCK_SOURCE="$src" PYTHONDONTWRITEBYTECODE=1
# Further arguments go to pytest (test files, --ignore, -k); by default every integration test.
[ $# -gt 0 ] || set -- "$src/tests/integration"
cgroups=v1
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgroups=v2
ip netns exec "$ns" "$src/tests/integration/with_cgroups.sh" "$cgroups" \
  /usr/bin/python3 -m pytest -p no:cacheprovider -q "$@"
