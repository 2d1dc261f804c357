#!/usr/bin/env bash
# The main job: installs what is missing, builds, then shows Airlock at work: validate the shipped
# policies and run their tests, see how a broken policy is reported (every mistake with
# file:line:col), then run the real gateway in a network namespace with local servers standing in
# for the internet: an allowed request, denials with their reasons, the metadata address blocked
# however it is spelled, and the audit log verified.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build test
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release
ctl=build/release/gateway/airlockctl/airlockctl

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
