"""Credential sources through the real gateway (docs/CREDENTIALS.md): an OAuth2 token endpoint, a
GitHub App, an exec helper and minted JWTs, each played by a local HTTPS upstream that checks
what it receives (credential_upstreams.py). Tokens are fetched ahead of use, refreshed before
they expire, kept while the source fails and dropped at expiry (503, nothing sent upstream).
No token, secret or helper output may appear in the gateway's log or audit records.
(PYTEST_DONT_REWRITE: a failed assertion shows its message, never the compared values,
which may be tokens or placeholders.)"""
import base64
import json
import os
import subprocess
import time

import pytest

from conftest import PROXY, Gateway
from credential_upstreams import (EchoApi, GitHubApi, S3Upstream, TokenEndpoint, bearer_token,
                                  rsa_key_pair)
from test_inspect import CLEAN_ENV, curl_https, events, poll, wait_events
from tls_upstreams import Pki

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

ECHO, GITHUB, TOKENS, S3 = "127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34"
AWS_KEY_ID, AWS_SECRET = "AKIA" + os.urandom(8).hex().upper(), os.urandom(20).hex()
AWS_SESSION_TOKEN = "FwoG" + os.urandom(24).hex()
TOKEN_PORT = 8443
APP_ID, INSTALLATION = 4242, 77

POLICY = """
version: v1
name: sources
egress:
  - {id: model, hosts: [model.test], inspect: true, credentials: [oauth]}
  - {id: svc, hosts: [svc.test], inspect: true, credentials: [minted]}
  - {id: helper, hosts: [helper.test], inspect: true, credentials: [helper]}
  - {id: keyed, hosts: [keyed.test], inspect: true, credentials: [keyed]}
  - {id: github-api, hosts: [api.github.test], inspect: true, credentials: [app]}
  - {id: github-git, hosts: [github.test], inspect: true, credentials: [app-git]}
  - {id: s3, hosts: [s3.test], inspect: true, credentials: [aws]}
  - {id: body, hosts: [body.test], inspect: true, credentials: [bodykey]}
  - {id: aws-echo, hosts: [aws-echo.test], inspect: true, credentials: [aws]}
private:
  - {id: upstreams, cidr: 127.0.0.0/24, ports: [443]}
"""
ECHO_NAMES = ["model.test", "svc.test", "helper.test", "keyed.test", "body.test",
              "aws-echo.test"]
GITHUB_NAMES = ["api.github.test", "github.test", GITHUB]

HELPER = """#!/usr/bin/python3
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
mode = open(os.path.join(here, "helper-mode")).read().strip()
token = open(os.path.join(here, "helper-token")).read().strip()
with open(os.path.join(here, "helper-runs"), "a") as f:
    f.write("run\\n")
sys.stderr.write("helper diagnostics mention " + token + "\\n")
if mode == "fail":
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
print(json.dumps({"token": token, "expires_at": int(time.time()) + 3600}))
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.echo = p.leaf("echo", ECHO_NAMES)
    p.github = p.leaf("github", GITHUB_NAMES)
    p.tokens = p.leaf("tokens", [TOKENS])
    p.s3 = p.leaf("s3", ["s3.test"])
    return p


@pytest.fixture(scope="module")
def app_key(tmp_path_factory):
    private, public = rsa_key_pair()
    path = tmp_path_factory.mktemp("app") / "app.pem"
    path.write_bytes(private)
    os.chmod(path, 0o600)
    return str(path), public


@pytest.fixture(scope="module")
def servers(pki, app_key):
    tokens = TokenEndpoint(TOKENS, TOKEN_PORT, *pki.tokens).start()
    github = GitHubApi(GITHUB, 443, *pki.github, app_id=APP_ID, public_key=app_key[1],
                       installation_id=INSTALLATION).start()
    github.make_repo("acme", "private", files={"README.md": "airlock private repo\n"})
    echo = EchoApi(ECHO, 443, *pki.echo).start()
    s3 = S3Upstream(S3, 443, *pki.s3, access_key_id=AWS_KEY_ID, secret_access_key=AWS_SECRET,
                    session_token=AWS_SESSION_TOKEN).start()
    yield tokens, github, echo, s3
    for s in (tokens, github, echo, s3):
        s.stop()


def gateway_config(d, pki, app_key, tokens, helper_timeout_ms=5000, extra=""):
    secret = d / "client-secret"
    secret.write_text(tokens.client_secret + "\n")
    jwt_key = d / "jwt.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                    str(jwt_key)], check=True)
    helper = d / "helper.py"
    helper.write_text(HELPER)
    os.chmod(helper, 0o700)
    (d / "helper-runs").write_text("")
    for name, value in (("helper-mode", "ok"), ("helper-token", "hlp_" + os.urandom(16).hex())):
        if not (d / name).exists():
            (d / name).write_text(value)
    keys = d / "aws-keys.json"
    keys.write_text(json.dumps({"Version": 1, "AccessKeyId": AWS_KEY_ID,
                                "SecretAccessKey": AWS_SECRET, "SessionToken": AWS_SESSION_TOKEN}))
    return f"""tls:
  upstream_ca_file: {pki.ca_cert}
credentials:
  oauth:
    source: oauth2_client_credentials
    token_url: https://{TOKENS}:{TOKEN_PORT}/token
    client_id: {tokens.client_id}
    client_secret_file: {secret}
    scope: models.read
    audience: https://model.test
    placeholder: {{env: MODEL_API_KEY, prefix: sk-}}
    inject: [{{header: Authorization, value: "Bearer {{token}}"}}]
  minted:
    source: jwt
    key_file: {jwt_key}
    ttl_seconds: 120
    issuer: airlock-test
    claims: {{tenant: acme, tier: 3}}
    placeholder: {{env: SVC_TOKEN}}
    inject: [{{header: Authorization, value: "Bearer {{token}}"}}]
  helper:
    source: exec
    command: [{helper}]
    timeout_ms: {helper_timeout_ms}
    placeholder: {{env: HELPER_TOKEN}}
    inject: [{{header: X-Api-Key, value: "{{token}}"}}]
  keyed:
    source: exec
    command: [{helper}]
    timeout_ms: {helper_timeout_ms}
    placeholder: {{env: KEYED_TOKEN}}
    inject: [{{query: api_key, value: "{{token}}"}}]
  app:
    source: github_app
    api_url: https://{GITHUB}
    app_id: {APP_ID}
    installation_id: {INSTALLATION}
    key_file: {app_key[0]}
    repositories: [private]
    permissions: {{contents: read, metadata: read}}
    placeholder: {{env: GITHUB_TOKEN, prefix: ghp_}}
    inject: [{{header: Authorization, value: "token {{token}}"}}]
  app-git:
    source: github_app
    api_url: https://{GITHUB}
    app_id: {APP_ID}
    installation_id: {INSTALLATION}
    key_file: {app_key[0]}
    placeholder: {{env: GIT_PASSWORD, prefix: ghp_}}
    inject: [{{header: Authorization, value: "Basic {{base64(x-access-token:{{token}})}}"}}]
  aws:
    source: aws_sigv4
    file: {keys}
    max_signed_body_bytes: 100000
    placeholder: {{env: AWS_ACCESS_KEY_ID, prefix: AKIA}}
  bodykey:
    source: exec
    command: [{helper}]
    timeout_ms: {helper_timeout_ms}
    placeholder: {{env: BODY_KEY, prefix: sk-}}
    inject: [{{header: X-Api-Key, value: "{{token}}"}}]
    body: {{json_fields: [api_key], max_bytes: 4096}}
{extra}"""


@pytest.fixture
def make_gw(tmp_path, dns, no_canary_hits, pki, app_key, servers):
    tokens, github, echo, s3 = servers
    dns.set("s3.test", [("A", S3, 60)])
    for name in ECHO_NAMES:
        dns.set(name, [("A", ECHO, 60)])
    for name in GITHUB_NAMES[:2]:
        dns.set(name, [("A", GITHUB, 60)])
    started = []

    def make(**kw):
        g = Gateway(str(tmp_path), dns, policies={"sources": POLICY},
                    extra_config=gateway_config(tmp_path, pki, app_key, tokens, **kw))
        g.ca = os.path.join(str(tmp_path), "state", "ca.crt")
        g.tmp = tmp_path
        started.append(g)
        return g

    make.tmp = tmp_path
    for s in servers:
        s.reset()
    tokens.fail = None
    tokens.expires_in = 3600
    echo.accept = None
    github.fail_tokens = None
    yield make
    for g in started:
        g.stop()
    # No token, client secret or helper output in anything the gateway wrote.
    secrets_ = (tokens.issued_tokens + github.issued_tokens + [tokens.client_secret] +
                [AWS_SECRET, AWS_SESSION_TOKEN] +
                [(tmp_path / "helper-token").read_text().strip()])
    for g in started:
        for path in (g.audit, g.log.name):
            text = open(path, errors="replace").read()
            for s in secrets_:
                assert s not in text, f"a secret reached {path}"


def session(g, source="127.0.0.1"):
    s = g.session(policy="sources", source=source)
    assert set(s["placeholders"]) == {"MODEL_API_KEY", "SVC_TOKEN", "HELPER_TOKEN", "KEYED_TOKEN",
                                      "GITHUB_TOKEN", "GIT_PASSWORD", "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY", "BODY_KEY"}, s
    return s["id"], s["placeholders"]


def test_oauth2_one_fetch_serves_many_requests_and_is_refreshed_before_expiry(make_gw, servers):
    tokens, _, echo, _ = servers
    tokens.expires_in = 4
    echo.accept = lambda a: tokens.is_valid(bearer_token(a))  # an expired token gets 401
    g = make_gw()
    _, ph = session(g)
    for _ in range(5):
        status, _, _, err = curl_https(g, "https://model.test/v1/chat", "-H",
                                       f"Authorization: Bearer {ph['MODEL_API_KEY']}")
        assert status == 200, (err, events(g.records(), "credential.error"))
    assert tokens.request_count <= 2, "a token was fetched per request"
    first = tokens.token_requests[0]
    assert first["auth_method"] == "basic" and first["grant_type"] == "client_credentials"
    assert first["scope"] == "models.read" and first["audience"] == "https://model.test"
    # Refreshed ahead of expiry (at about three quarters of its 4 s), off the request path.
    assert poll(lambda: len(tokens.issued_tokens) >= 3, timeout=15), tokens.request_count
    status, _, _, err = curl_https(g, "https://model.test/v1/chat")
    assert status == 200, err
    assert bearer_token(echo.authorizations[-1]) in tokens.issued_tokens[-2:]
    refreshes = wait_events(g, "credential.refresh", 3, credential="oauth")
    assert all("expires_at" in r and r["next_attempt_s"] >= 1 for r in refreshes), refreshes
    metrics = open_metrics()
    assert 'airlock_credential_refreshes_total{credential="oauth"}' in metrics
    assert 'airlock_credential_expiry_seconds{credential="oauth"}' in metrics


def test_a_failing_source_keeps_its_last_token_until_expiry_then_503(make_gw, servers):
    tokens, _, echo, _ = servers
    tokens.expires_in = 4
    g = make_gw()
    _, ph = session(g)
    tokens.fail = 500
    status, _, _, err = curl_https(g, "https://model.test/v1/chat")
    assert status == 200, err  # the last good token still serves
    err_rec = wait_events(g, "credential.error", 1, credential="oauth")[0]
    assert "500" in err_rec["error"] and err_rec["token_valid"] is True, err_rec

    def refused():
        status, headers, _, _ = curl_https(g, "https://model.test/v1/chat")
        return status == 503 and headers.get("x-airlock-reason") == "credential_unavailable"
    assert poll(refused, timeout=15, interval=0.3), "an expired token kept serving"
    count = len(echo.requests)
    assert refused() and len(echo.requests) == count, "a 503 request reached the upstream"
    assert any(r.get("token_valid") is False for r in events(g.records(
        lambda recs: any(r.get("token_valid") is False for r in events(
            recs, "credential.error", credential="oauth")), timeout=10), "credential.error"))
    tokens.fail = None  # the source recovers: retried with back-off, served again
    assert poll(lambda: curl_https(g, "https://model.test/v1/chat")[0] == 200, timeout=20,
                interval=0.5)


def test_exec_helper_token_is_injected_and_its_stderr_kept_out_of_logs(make_gw, servers):
    _, _, echo, _ = servers
    g = make_gw()
    _, ph = session(g)
    status, _, _, err = curl_https(g, "https://helper.test/v1/x", "-H",
                                   f"X-Api-Key: {ph['HELPER_TOKEN']}")
    assert status == 200, err
    token = (g.tmp / "helper-token").read_text().strip()
    assert echo.requests[-1].header("x-api-key") == token
    assert wait_events(g, "credential.refresh", 1, credential="helper")


@pytest.mark.parametrize("mode,message", [("fail", "exited with status 3"),
                                          ("hang", "did not finish within 500 ms")])
def test_a_broken_helper_means_503_and_nothing_upstream(make_gw, servers, tmp_path, mode,
                                                         message):
    _, _, echo, _ = servers
    (tmp_path / "helper-mode").write_text(mode)
    g = make_gw(helper_timeout_ms=500)
    _, ph = session(g)
    status, headers, body, err = curl_https(g, "https://helper.test/v1/x", "-H",
                                            f"X-Api-Key: {ph['HELPER_TOKEN']}")
    assert status == 503 and headers.get("x-airlock-reason") == "credential_unavailable", err
    assert b"credential 'helper'" in body
    assert echo.requests == [], "a request without its credential reached the upstream"
    rec = wait_events(g, "credential.error", 1, credential="helper")[0]
    assert message in rec["error"] and rec["token_valid"] is False, rec
    assert "discarded" in rec["error"] or mode == "hang"


def test_query_parameter_injection(make_gw, servers):
    _, _, echo, _ = servers
    g = make_gw()
    _, ph = session(g)
    token = (g.tmp / "helper-token").read_text().strip()
    status, _, _, err = curl_https(g, f"https://keyed.test/v1/q?a=1&api_key={ph['KEYED_TOKEN']}&b=2")
    assert status == 200, err
    assert echo.requests[-1].target == f"/v1/q?a=1&api_key={token}&b=2"
    status, _, _, err = curl_https(g, "https://keyed.test/v1/q?api_key=mine&c=3")
    assert status == 200, err
    assert echo.requests[-1].target == f"/v1/q?c=3&api_key={token}"  # the client's is dropped


def _verify_es256(jwt, public_key):
    head, claims, sig = jwt.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big"))
    public_key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return (json.loads(base64.urlsafe_b64decode(head + "==")),
            json.loads(base64.urlsafe_b64decode(claims + "==")))


def test_jwt_minted_per_session_and_destination(make_gw, servers):
    _, _, echo, _ = servers
    g = make_gw()
    key = serialization.load_pem_private_key((g.tmp / "jwt.pem").read_bytes(), None).public_key()
    a, ph_a = session(g)
    b, ph_b = session(g, source="127.0.0.2")
    for _ in range(2):
        status, _, _, err = curl_https(g, "https://svc.test/api", "-H",
                                       f"Authorization: Bearer {ph_a['SVC_TOKEN']}")
        assert status == 200, err
    status, _, _, err = curl_https(g, "https://svc.test/api", "--interface", "127.0.0.2")
    assert status == 200, err
    jwts = [bearer_token(x) for x in echo.authorizations]
    assert jwts[0] == jwts[1], "a minted token is reused while it is fresh"
    header, claims = _verify_es256(jwts[0], key)
    assert header == {"alg": "ES256", "typ": "JWT"}
    assert claims["sub"] == a and claims["aud"] == "svc.test" and claims["iss"] == "airlock-test"
    assert claims["exp"] - claims["iat"] == 120 and abs(claims["iat"] - time.time()) < 30
    assert claims["tenant"] == "acme" and claims["tier"] == 3 and len(claims["jti"]) == 32
    _, other = _verify_es256(jwts[2], key)
    assert other["sub"] == b and other["jti"] != claims["jti"]


def test_github_app_installation_token_for_the_api_and_git_clone(make_gw, servers, tmp_path):
    _, github, _, _ = servers
    g = make_gw()
    _, ph = session(g)
    status, _, body, err = curl_https(g, "https://api.github.test/user", "-H",
                                      f"Authorization: token {ph['GITHUB_TOKEN']}")
    assert status == 200, (err, body)
    narrowed = [r for r in github.token_requests if r["body"].get("repositories")]
    assert narrowed and narrowed[0]["body"] == {"repositories": ["private"],
                                                "permissions": {"contents": "read",
                                                                "metadata": "read"}}
    assert all(r["claims"]["iss"] == APP_ID and r["status"] == 201
               for r in github.token_requests), github.token_requests
    # gh, pointed at the local GitHub Enterprise-style API, with the placeholder as GH_TOKEN.
    gh_env = dict(CLEAN_ENV, HTTPS_PROXY=PROXY, SSL_CERT_FILE=g.ca, GH_HOST="api.github.test",
                  GH_TOKEN=ph["GITHUB_TOKEN"], GH_CONFIG_DIR=str(tmp_path / "gh"),
                  GH_NO_UPDATE_NOTIFIER="1", GH_PROMPT_DISABLED="1", HOME=str(tmp_path))
    out = subprocess.run(["gh", "api", "/user"], env=gh_env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert json.loads(out.stdout)["login"], out.stdout
    assert github.authorizations[-1].split()[1] in github.issued_tokens
    # git: the first request goes without credentials, gets 401, then sends the placeholder.
    env = dict(CLEAN_ENV, HTTPS_PROXY=PROXY, GIT_SSL_CAINFO=g.ca, GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    url = f"https://x-access-token:{ph['GIT_PASSWORD']}@github.test/acme/private.git"
    out = subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert (tmp_path / "clone" / "README.md").read_text() == "airlock private repo\n"
    # git's first request goes without credentials; the gateway writes the token into every
    # request to the bound host, so git never meets the 401 it would otherwise get.
    assert all(r["authorized"] and r["status"] != 401 for r in github.git_requests)
    served = [r for r in github.git_requests if r["authorized"]]
    assert served and all(r["user"] == "x-access-token" for r in served), github.git_requests


def test_a_token_endpoint_with_an_untrusted_certificate_is_never_sent_the_secret(make_gw, pki,
                                                                                 servers):
    """The broker's own HTTPS client verifies the token endpoint like any upstream: a
    certificate from another CA fails the handshake before the client secret is sent."""
    tokens, *_ = servers
    rogue = TokenEndpoint("127.0.0.35", TOKEN_PORT, *pki.leaf("rogue", ["127.0.0.35"], rogue=True),
                          client_secret=tokens.client_secret).start()
    try:
        g = make_gw(extra=(
            "  rogue:\n"
            "    source: oauth2_client_credentials\n"
            f"    token_url: https://127.0.0.35:{TOKEN_PORT}/token\n"
            f"    client_id: {tokens.client_id}\n"
            f"    client_secret_file: {make_gw.tmp / 'client-secret'}\n"
            "    placeholder: {env: ROGUE}\n"
            "    inject: [{header: Authorization, value: \"Bearer {token}\"}]\n"))
        rec = wait_events(g, "credential.error", 1, credential="rogue")[0]
        assert "TLS handshake failed" in rec["error"] and rec["token_valid"] is False, rec
        assert rogue.request_count == 0, "the client secret went to an unverified endpoint"
    finally:
        rogue.stop()


def test_aws_sigv4_requests_are_signed_again_with_the_real_keys(make_gw, servers, tmp_path):
    import boto3
    from botocore.config import Config
    *_, s3 = servers
    g = make_gw()
    _, ph = session(g)
    client = boto3.client(
        "s3", endpoint_url="https://s3.test", region_name="eu-west-1", verify=g.ca,
        aws_access_key_id=ph["AWS_ACCESS_KEY_ID"], aws_secret_access_key=ph["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, proxies={"https": PROXY},
                      retries={"max_attempts": 1}))
    client.put_object(Bucket="test-bucket", Key="notes.txt", Body=b"hello from the sandbox")
    got = client.get_object(Bucket="test-bucket", Key="notes.txt")["Body"].read()
    assert got == b"hello from the sandbox"
    assert s3.get_object("test-bucket", "notes.txt") == b"hello from the sandbox"
    assert s3.auth and all(a.verified and a.access_key_id == AWS_KEY_ID and a.region == "eu-west-1"
                           and a.security_token is True for a in s3.auth), s3.auth
    # The aws CLI, as an agent would run it, with the placeholders in its environment.
    (tmp_path / "aws-config").write_text("[default]\ns3 =\n    addressing_style = path\n")
    (tmp_path / "upload.bin").write_bytes(os.urandom(300000))
    env = dict(CLEAN_ENV, HTTPS_PROXY=PROXY, AWS_CA_BUNDLE=g.ca, AWS_DEFAULT_REGION="eu-west-1",
               AWS_ACCESS_KEY_ID=ph["AWS_ACCESS_KEY_ID"], HOME=str(tmp_path),
               AWS_SECRET_ACCESS_KEY=ph["AWS_SECRET_ACCESS_KEY"],
               AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    out = subprocess.run(["/usr/bin/aws", "s3", "cp", str(tmp_path / "upload.bin"),
                          "s3://test-bucket/upload.bin", "--endpoint-url", "https://s3.test"],
                         env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert s3.get_object("test-bucket", "upload.bin") == (tmp_path / "upload.bin").read_bytes()
    assert all(a.verified for a in s3.auth)
    rec = events(g.records(), "http.request", host="s3.test")
    assert rec and all(r.get("credentials") == ["aws:Authorization"] for r in rec), rec


def test_aws_streaming_signatures_are_refused_with_a_reason(make_gw, servers):
    *_, s3 = servers
    g = make_gw()
    _, ph = session(g)
    auth = (f"AWS4-HMAC-SHA256 Credential={ph['AWS_ACCESS_KEY_ID']}/20261202/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00")
    status, headers, body, err = curl_https(
        g, "https://s3.test/test-bucket/k", "-X", "PUT", "--data-binary", "abc", "-H",
        f"Authorization: {auth}", "-H", "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "-H", "x-amz-date: 20261202T000000Z")
    assert status == 400 and headers.get("x-airlock-reason") == "aws_streaming_unsupported", err
    assert b"UNSIGNED-PAYLOAD" in body
    status, headers, _, err = curl_https(g, "https://s3.test/test-bucket/k")
    assert status == 400 and headers.get("x-airlock-reason") == "aws_signature_required", err
    assert s3.requests == [], "an unsigned request reached S3"


def test_an_aws_upstream_echo_shows_the_placeholder_key_and_no_session_token(make_gw, servers):
    _, _, echo, _ = servers
    g = make_gw()
    _, ph = session(g)
    auth = (f"AWS4-HMAC-SHA256 Credential={ph['AWS_ACCESS_KEY_ID']}/20261202/eu-west-1/s3/"
            "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00")
    status, headers, body, err = curl_https(g, "https://aws-echo.test/b/k", "-H",
                                            f"Authorization: {auth}", "-H",
                                            "x-amz-content-sha256: UNSIGNED-PAYLOAD")
    assert status == 200, err
    sent = echo.requests[-1]
    assert AWS_KEY_ID in sent.header("authorization")
    assert sent.header("x-amz-security-token") == AWS_SESSION_TOKEN
    seen = body.decode() + json.dumps(headers)
    assert AWS_KEY_ID not in seen and AWS_SESSION_TOKEN not in seen
    assert ph["AWS_ACCESS_KEY_ID"] in headers["x-echo-authorization"]


def test_json_body_fields_get_the_token_and_the_echo_shows_the_placeholder(make_gw, servers,
                                                                         tmp_path):
    _, _, echo, _ = servers
    g = make_gw()
    _, ph = session(g)
    token = (g.tmp / "helper-token").read_text().strip()
    body = json.dumps({"model": "m", "api_key": ph["BODY_KEY"], "note": "keep " + ph["BODY_KEY"]})
    status, _, answer, err = curl_https(g, "https://body.test/v1/chat", "-H",
                                        "Content-Type: application/json", "--data-binary", body)
    assert status == 200, err
    sent = json.loads(echo.requests[-1].body)
    assert sent == {"model": "m", "api_key": token, "note": "keep " + ph["BODY_KEY"]}
    assert token not in answer.decode() and ph["BODY_KEY"] in answer.decode()
    rec = wait_events(g, "http.request", 1, host="body.test")[0]
    assert rec["credentials"] == ["bodykey:X-Api-Key", "bodykey:body:api_key"], rec
    # Over the body limit: 413, nothing upstream, never a truncated body.
    (tmp_path / "big.json").write_text(json.dumps({"api_key": ph["BODY_KEY"], "pad": "x" * 5000}))
    before = len(echo.requests)
    status, headers, _, err = curl_https(g, "https://body.test/v1/chat", "-H",
                                         "Content-Type: application/json", "--data-binary",
                                         f"@{tmp_path / 'big.json'}")
    assert status == 413 and headers.get("x-airlock-reason") == "request_body_too_large", err
    assert len(echo.requests) == before


def test_aws_bodies_without_a_declared_hash_are_hashed_up_to_the_limit(make_gw, servers,
                                                                     tmp_path):
    import boto3
    from botocore.config import Config
    *_, s3 = servers
    g = make_gw()
    _, ph = session(g)
    sts = boto3.client(
        "sts", endpoint_url="https://s3.test", region_name="eu-west-1", verify=g.ca,
        aws_access_key_id=ph["AWS_ACCESS_KEY_ID"], aws_secret_access_key=ph["AWS_SECRET_ACCESS_KEY"],
        config=Config(proxies={"https": PROXY}, retries={"max_attempts": 1}))
    assert sts.get_caller_identity()["Account"] == "123456789012"
    rec = s3.auth[-1]
    assert rec.verified and rec.service == "sts" and rec.payload_hash == "body", vars(rec)
    auth = (f"AWS4-HMAC-SHA256 Credential={ph['AWS_ACCESS_KEY_ID']}/20261202/eu-west-1/sts/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
    before = len(s3.requests)
    (tmp_path / "big").write_bytes(b"x" * 150000)
    status, headers, _, err = curl_https(g, "https://s3.test/", "--data-binary",
                                         f"@{tmp_path / 'big'}", "-H", f"Authorization: {auth}")
    assert status == 413 and headers.get("x-airlock-reason") == "request_body_too_large", err
    assert len(s3.requests) == before


def open_metrics():
    import urllib.request
    return urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
