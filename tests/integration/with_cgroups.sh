#!/usr/bin/env bash
# Runs a command with the host's cgroup hierarchies mounted again. `ip netns exec` gives the
# tests a private mount namespace with a fresh /sys that has no cgroup hierarchy, which would
# leave vmlaunch's per-VM cgroups unexercised. The mounts stay in that namespace.
# Usage: with_cgroups.sh v1|v2 COMMAND...
set -euo pipefail
mode=$1
shift
if [ "$mode" = v2 ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
  for c in memory pids; do
    mkdir -p "/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || rmdir "/sys/fs/cgroup/$c"
  done
fi
exec "$@"
