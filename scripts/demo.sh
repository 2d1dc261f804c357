#!/usr/bin/env bash
# The main job: installs what is missing, builds, builds the guest image, then shows Airlock at
# work: validate the shipped policies and run their tests, see how a broken policy is reported
# (every mistake with file:line:col), run the real gateway with local servers standing in for the
# internet, and finally boot a microVM whose only way out is the gateway and show, from inside
# it, an allowed request, a denied host with its reason, 169.254.169.254 blocked and an unknown
# DNS name refused; then the session's audit records and the verified chain. Last, a microVM
# whose $GITHUB_TOKEN is a placeholder clones a private repository and calls the API with real,
# minted tokens the gateway injects, and the placeholder sent elsewhere is blocked.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build test vm
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release
ctl=build/release/gateway/airlockctl/airlockctl

echo
echo "== vmlaunch image build   (Debian's cloud kernel, busybox, the guest agent; cached)"
build/release/vmlaunch/vmlaunch image build
echo
echo "== vmlaunch image build --rootfs   (the same, plus a Debian root disk with curl and git)"
build/release/vmlaunch/vmlaunch image build --rootfs --cache /var/cache/airlock/rootfs

echo
echo "== airlockctl policy check policies/"
"$ctl" policy check --credentials github,github-git,huggingface,aws-datasets policies
echo
echo "== airlockctl policy test policies/"
"$ctl" policy test policies
echo
echo "== a policy with several mistakes (tests/testdata/policy/broken.yaml)"
if "$ctl" policy check tests/testdata/policy/broken.yaml; then
  echo "demo: the broken policy was accepted" >&2
  exit 1
fi
echo "(exit status 1, as expected)"
echo
echo "== the gateway (in a network namespace with no route out)"
scripts/demo/run.sh "$PWD/build/release" "$PWD"
echo
echo "== a microVM whose only way out is the gateway (QEMU microvm; in a namespace of its own)"
scripts/demo/run.sh "$PWD/build/release" "$PWD" vm_demo.py
echo
echo "== credentials: a microVM holding only placeholders; the gateway mints and injects the token"
AIRLOCK_ROOTFS_IMAGE=/var/cache/airlock/rootfs \
  scripts/demo/run.sh "$PWD/build/release" "$PWD" vm_credentials_demo.py
