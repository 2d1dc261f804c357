#!/usr/bin/env bash
# Installs what Airlock needs from Debian's packages, and only what is missing (idempotent).
# Nothing is downloaded from anywhere but the Debian archive.
#
#   scripts/setup.sh [GROUP...]     groups: build test vm bench all (default: all)
#
#   build  compilers, CMake and the libraries the code links (llhttp comes as C sources from
#          node-llhttp and is compiled by the build)
#   test   the real tools the tests drive: curl, openssl, nftables, iproute2, socat, python3,
#          git, Node.js, python3 requests, websockets, h2, httpx and grpcio
#   vm     QEMU, busybox, lz4 and cpio for microVM guests (kernel extraction, initramfs);
#          debootstrap and e2fsprogs for the optional Debian root disk
#   bench  the peers the benchmarks compare against: squid (the OpenSSL build, for ssl-bump),
#          tinyproxy, haproxy, mitmproxy; the load generators wrk, hey and h2load, and nghttpd
set -euo pipefail

declare -A GROUPS_PKGS=(
  [build]="build-essential cmake ninja-build pkg-config libevent-dev libssl-dev libc-ares-dev
           libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
           node-llhttp nlohmann-json3-dev libpsl-dev publicsuffix libnftables-dev libcli11-dev
           clang-16 libclang-rt-16-dev libnghttp2-dev libjemalloc-dev"
  [test]="curl openssl nftables iproute2 socat iperf3 python3 python3-yaml python3-jsonschema python3-pytest iputils-ping
          git nodejs python3-requests python3-websockets python3-cryptography python3-boto3
          awscli gh python3-h2 python3-httpx python3-grpcio"
  [vm]="qemu-system-x86 busybox-static lz4 cpio debootstrap e2fsprogs"
  [bench]="squid-openssl tinyproxy haproxy mitmproxy wrk hey nghttp2-client nghttp2-server linux-perf"
)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(all)
wanted=()
for g in "${groups[@]}"; do
  if [ "$g" = all ]; then
    for k in build test vm bench; do wanted+=(${GROUPS_PKGS[$k]}); done
  elif [ -n "${GROUPS_PKGS[$g]:-}" ]; then
    wanted+=(${GROUPS_PKGS[$g]})
  else
    echo "setup.sh: unknown group '$g' (build test vm bench all)" >&2
    exit 2
  fi
done

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#wanted[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
# Packaged daemons (squid, haproxy, tinyproxy) must not start on install: the benchmarks start
# their own instances on loopback. policy-rc.d is honoured by invoke-rc.d; restore it after.
policy_rc=/usr/sbin/policy-rc.d
had_policy_rc=0
[ -e "$policy_rc" ] && had_policy_rc=1 && cp -p "$policy_rc" "$policy_rc.airlock-save"
printf '#!/bin/sh\nexit 101\n' > "$policy_rc"
chmod 755 "$policy_rc"
restore() {
  if [ "$had_policy_rc" = 1 ]; then mv -f "$policy_rc.airlock-save" "$policy_rc"; else rm -f "$policy_rc"; fi
}
trap restore EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
