#!/usr/bin/env bash
# The main job: installs what is missing, builds, then shows what a security team does with
# Airlock today: validate the shipped policies, run their tests, and see how a broken policy is
# reported (every mistake with file:line:col).
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
