#!/usr/bin/python3
"""Checks the policy JSON Schema: it is a valid Draft 2020-12 schema, every shipped policy
validates against it, and policies with structural mistakes are rejected by it."""
import glob
import os
import sys

import jsonschema
import yaml

root = sys.argv[1]
with open(os.path.join(root, "policies/schema/policy-v1.schema.json")) as f:
    import json
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

failures = 0
checked = 0
for path in sorted(glob.glob(os.path.join(root, "policies/*.yaml"))):
    if path.endswith(".test.yaml"):
        continue
    with open(path) as f:
        doc = yaml.safe_load(f)
    errors = list(validator.iter_errors(doc))
    checked += 1
    if errors:
        failures += 1
        for e in errors:
            print(f"FAIL {path}: {e.json_path}: {e.message}")
    else:
        print(f"PASS {path} validates")

# Mistakes a schema can see must be rejected by it.
invalid = ["unknown-key-top", "unknown-key-rule", "unknown-key-http", "missing-name",
           "missing-version", "missing-rule-id", "missing-hosts", "bad-version", "bad-name",
           "bad-mode", "bad-protocol", "host-star", "host-empty-label", "host-non-ascii",
           "host-empty-list", "port-zero", "port-too-large", "port-non-numeric",
           "port-empty-list", "tcp-without-ports", "inspect-on-http", "http-without-inspect",
           "http-on-tcp", "method-unknown", "method-lowercase", "methods-empty",
           "path-no-slash", "path-query", "credential-not-inspected", "credential-cleartext",
           "private-missing-ports", "limit-zero", "limit-not-number", "size-bad-unit",
           "dns-bad-mode", "wrong-type-egress", "wrong-type-hosts"]
# Not listed: wrong-type-inspect (`inspect: yes`). YAML 1.1 parsers read `yes` as true, so a
# schema cannot see it; airlockctl accepts only `true` and `false`.
for name in invalid:
    path = os.path.join(root, "tests/testdata/policy/invalid", name + ".yaml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    checked += 1
    if validator.is_valid(doc):
        failures += 1
        print(f"FAIL {name}: the schema accepted a policy airlockctl rejects")
    else:
        print(f"PASS {name} is rejected by the schema")

print(f"{checked - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
