#!/usr/bin/env bash
# airlockctl policy check/test as a security team runs them, and airlockctl session's command
# line without a gateway: the real binary, real files. Asserts exit codes and what was printed,
# not just that nothing crashed. (tests/integration/test_sessions.py runs `session` against a
# real gateway.)
set -uo pipefail
ctl=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
  fi
}

# A broken policy: exit 1, every error as file:line:col, nothing on stdout claims success.
"$ctl" policy check "$src/tests/testdata/policy/broken.yaml" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "broken policy exits 1" test "$rc" -eq 1
errors=$(grep -cE '^[^:]+/broken\.yaml:[0-9]+:[0-9]+: error: ' "$tmp/err")
check "broken policy reports every mistake with file:line:col ($errors)" test "$errors" -ge 25
check "broken policy summary line" grep -qE '^[0-9]+ errors$' "$tmp/err"
check "broken policy prints no ok line" test ! -s "$tmp/out"

# The shipped policies are valid, including their credential names.
"$ctl" policy check --credentials github,github-git,huggingface,aws-datasets "$src/policies" \
  >"$tmp/out" 2>"$tmp/err"
check "shipped policies are valid" test $? -eq 0
check "every shipped policy is listed" test "$(grep -c '^ok ' "$tmp/out")" -eq 4
# Without --credentials matching them, a credential reference is an error.
"$ctl" policy check --credentials github "$src/policies" >"$tmp/out" 2>"$tmp/err"
check "unknown credential names are rejected" test $? -eq 1
check "unknown credential error names the credential" grep -q "unknown credential 'github-git'" "$tmp/err"
cat >"$tmp/airlock.yaml" <<'YAML'
credentials:
  github:
    source: static
    env: AIRLOCK_TEST_UNUSED
    placeholder: {env: GITHUB_TOKEN, prefix: ghp_}
    inject:
      - {header: Authorization, value: "Bearer {token}"}
YAML
"$ctl" policy check --config "$tmp/airlock.yaml" "$src/policies" >"$tmp/out" 2>"$tmp/err"
check "--config: credentials not in airlock.yaml are rejected" test $? -eq 1
check "--config: the error names the missing credential" \
  grep -q "unknown credential 'github-git'" "$tmp/err"
check "--config: the defined one is known" sh -c "! grep -q \"unknown credential 'github'\" '$tmp/err'"

# Policy tests pass, and a failing expectation fails the run.
"$ctl" policy test "$src/policies" >"$tmp/out" 2>"$tmp/err"
check "shipped policy tests pass" test $? -eq 0
check "shipped policy tests summary" grep -qE '^[1-9][0-9]* passed, 0 failed$' "$tmp/out"
cp "$src/policies/default.yaml" "$tmp/p.yaml"
cat >"$tmp/p.test.yaml" <<'YAML'
cases:
  - name: deliberately wrong
    request: {host: example.com}
    expect: allow
YAML
"$ctl" policy test "$tmp" >"$tmp/out" 2>"$tmp/err"
check "a wrong expectation fails the run" test $? -eq 1
check "the failure says what was expected and got" \
  grep -q "FAIL .*deliberately wrong: expected allow, got deny host_not_allowed" "$tmp/out"
check "failing summary" grep -q '^0 passed, 1 failed$' "$tmp/out"

# Bad command lines.
"$ctl" policy check "$tmp/does-not-exist.yaml" >"$tmp/out" 2>"$tmp/err"
check "missing file exits 1" test $? -eq 1
check "missing file is named" grep -q "does-not-exist.yaml: error: no such file" "$tmp/err"
"$ctl" policy frobnicate >/dev/null 2>&1
check "unknown subcommand fails" test $? -ne 0

# airlockctl session: bad command lines are refused before any socket is touched (CLI11's exit
# codes, as for every subcommand), and a gateway that is not there is exit 1 with the reason.
"$ctl" session create --socket "$tmp/none.sock" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "session create without --policy fails" sh -c "test $rc -ne 0 && test $rc -ne 1"
check "session create says --policy is required" grep -q -- "--policy is required" "$tmp/err"
"$ctl" session create --socket "$tmp/none.sock" --policy p --label nokey >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a label without = is a usage error" sh -c "test $rc -ne 0 && test $rc -ne 1"
check "the label error says KEY=VALUE" grep -q "use KEY=VALUE" "$tmp/err"
"$ctl" session ls --socket "$tmp/none.sock" --config "$tmp/airlock.yaml" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "--socket and --config together are refused" sh -c "test $rc -ne 0 && test $rc -ne 1"
check "the refusal names both" grep -q -- "--socket excludes --config" "$tmp/err"
"$ctl" session rm --socket "$tmp/none.sock" >"$tmp/out" 2>"$tmp/err"
check "session rm without ids fails" test $? -ne 0
check "session rm says ids are required" grep -q "ids is required" "$tmp/err"
"$ctl" session ls --socket "$tmp/none.sock" >"$tmp/out" 2>"$tmp/err"
check "no gateway: exit 1" test $? -eq 1
check "no gateway: the socket is named" grep -q "cannot reach the gateway's control socket $tmp/none.sock" "$tmp/err"
check "no gateway: nothing on stdout" test ! -s "$tmp/out"
printf 'listen:\n  control: %s\n' "$tmp/gw.sock" >"$tmp/gw.yaml"
"$ctl" session rm --config "$tmp/gw.yaml" s-1 >"$tmp/out" 2>"$tmp/err"
check "--config: exit 1 without that gateway" test $? -eq 1
check "--config: the socket is airlock.yaml's listen.control" grep -q "$tmp/gw.sock" "$tmp/err"
"$ctl" session ls --config "$tmp/does-not-exist.yaml" >"$tmp/out" 2>"$tmp/err"
check "--config: an unreadable airlock.yaml is exit 1" test $? -eq 1
check "--config: the file is named" grep -q "does-not-exist.yaml" "$tmp/err"

echo "$passed passed, $failed failed"
test "$failed" -eq 0
