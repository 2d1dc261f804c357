"""The credential broker with static credentials (docs/CREDENTIALS.md): placeholders handed to
each session, the real token written into allowed inspected requests to the hosts whose
rule binds it, and a placeholder found anywhere else blocked and audited. Real curl through the
real gateway to local HTTPS upstreams that record what they received; no real token may appear
in any log or record.
(PYTEST_DONT_REWRITE: a failed assertion shows its message, never the compared values,
which may be tokens or placeholders.)"""
import base64
import hashlib
import json
import os
import secrets
import subprocess

import pytest

from conftest import PROXY, Gateway, curl, read_records
from test_inspect import CLEAN_ENV, curl_https, events, poll, wait_events
from tls_upstreams import HttpsUpstream, Pki

POLICY = """
version: v1
name: creds
egress:
  - id: github-api
    hosts: [api.example.test]
    inspect: true
    credentials: [github]
  - id: github-git
    hosts: [git.example.test]
    inspect: true
    credentials: [github-git]
  - id: elsewhere
    hosts: [other.example.test]
    inspect: true
  - id: cleartext
    hosts: [web.test]
    protocol: http
    ports: [8080]
private:
  - id: upstreams
    cidr: 127.0.0.0/24
    ports: [443, 8080]
"""

NAMES = ["api.example.test", "git.example.test", "other.example.test"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.good = p.leaf("good", NAMES)
    return p


@pytest.fixture(scope="module")
def upstream(pki):
    u = HttpsUpstream("127.0.0.12", 443, *pki.good)
    yield u
    u.close()


# The `github` credential, bound by rules that write it as a bearer token (str.format: secret).
GITHUB_CREDENTIAL = """  github:
    source: static
    file: {secret}
    placeholder: {{env: GITHUB_TOKEN, prefix: ghp_}}
    inject:
      - header: Authorization
        value: "Bearer {{token}}"
"""


def static_token(tmp_path):
    """A fresh token (the real, secret one: only the upstream may see it) in a 0600 file:
    (token, path)."""
    token = "ghs_" + secrets.token_hex(20)
    secret = tmp_path / "github-token"
    secret.write_text(token + "\n")
    os.chmod(secret, 0o600)
    return token, secret


@pytest.fixture
def gw(tmp_path, dns, no_canary_hits, pki, upstream):
    for name in NAMES:
        dns.set(name, [("A", "127.0.0.12", 60)])
    upstream.reset()
    token, secret = static_token(tmp_path)
    g = Gateway(str(tmp_path), dns, policies={"creds": POLICY}, extra_config=f"""tls:
  upstream_ca_file: {pki.ca_cert}
credentials:
{GITHUB_CREDENTIAL.format(secret=secret)}  github-git:
    source: static
    file: {secret}
    placeholder: {{env: GIT_TOKEN, prefix: ghp_}}
    inject:
      - header: Authorization
        value: "Basic {{base64(x-access-token:{{token}})}}"
""")
    g.token = token
    g.ca = os.path.join(str(tmp_path), "state", "ca.crt")
    assert poll(lambda: os.path.exists(g.ca))
    yield g
    g.stop()
    # The real token appears in no log, record or answer the gateway wrote.
    for path in (g.audit, g.log.name):
        assert token not in open(path, errors="replace").read(), path


def new_session(g, **kw):
    s = g.session(policy="creds", **kw)
    assert set(s["placeholders"]) == {"GITHUB_TOKEN", "GIT_TOKEN"}, s
    for value in s["placeholders"].values():
        assert value.startswith("ghp_") and len(value) == 4 + 36
    return s


def test_placeholders_are_per_session_and_shown_once(gw):
    a, b = new_session(gw), new_session(gw, source=None, token=True)
    assert a["placeholders"]["GITHUB_TOKEN"] != b["placeholders"]["GITHUB_TOKEN"]
    status, again = gw.api("GET", f"/v1/sessions/{a['id']}")
    assert status == 200 and "placeholders" not in again


def test_the_real_token_replaces_the_placeholder_on_a_bound_host(gw, upstream):
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    status, _, body, err = curl_https(gw, "https://api.example.test/user", "-H",
                                      f"Authorization: Bearer {ph}")
    assert status == 200, err
    assert [r.header("authorization") for r in upstream.requests] == [f"Bearer {gw.token}"]
    rec = wait_events(gw, "http.request", 1)[0]
    assert rec["credentials"] == ["github:Authorization"] and rec["status"] == 200
    # Without any credential from the client, the header is added.
    status, _, _, err = curl_https(gw, "https://api.example.test/user")
    assert status == 200, err
    assert upstream.requests[-1].header("authorization") == f"Bearer {gw.token}"
    # A credential of the client's own is replaced, never passed on.
    curl_https(gw, "https://api.example.test/user", "-H", "Authorization: Bearer mine")
    assert upstream.requests[-1].header("authorization") == f"Bearer {gw.token}"


def test_basic_credentials_git_style_are_replaced_where_they_stand(gw, upstream):
    s = new_session(gw)
    ph = s["placeholders"]["GIT_TOKEN"]
    status, _, _, err = curl_https(gw, "https://git.example.test/acme/repo.git/info/refs",
                                   "-u", f"x-access-token:{ph}")
    assert status == 200, err
    got = upstream.requests[-1].header("authorization")
    assert got.startswith("Basic ")
    assert base64.b64decode(got[6:]).decode() == f"x-access-token:{gw.token}"


@pytest.mark.parametrize("where,args,url", [
    ("header:Authorization", lambda ph: ["-H", f"Authorization: Bearer {ph}"], "/x"),
    ("header:X-Api-Key", lambda ph: ["-H", f"X-Api-Key: {ph}"], "/x"),
    ("header:Authorization (basic)", lambda ph: ["-u", f"me:{ph}"], "/x"),
    ("url", lambda ph: [], "/x?key={ph}"),
    ("url", lambda ph: [], "/x?key=" + "".join("%{:02X}".format(ord(c)) for c in "{ph}")),
    ("url", lambda ph: [], "/{PH}/upper-cased"),
    ("url (base64)", lambda ph: [], "/callback?state={b64}"),
    ("url (base64)", lambda ph: [], "/v1/{b64}/view"),
])
def test_a_placeholder_sent_to_an_unbound_host_is_blocked(gw, upstream, where, args, url):
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    url_template = url
    b64 = base64.urlsafe_b64encode(f'{{"token": "{ph}"}}'.encode()).decode().rstrip("=")
    if "%" in url:
        url = "/x?key=" + "".join("%{:02X}".format(ord(c)) for c in ph)
    else:
        url = url.replace("{ph}", ph).replace("{PH}", ph.upper()).replace("{b64}", b64)
    status, headers, body, err = curl_https(gw, "https://other.example.test" + url, *args(ph))
    assert status == 403 and headers.get("x-airlock-reason") == "credential_leak_blocked", err
    assert upstream.requests == [], "the placeholder reached the upstream"
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["credential"] == "github" and leak["where"] == where, leak
    assert ph not in open(gw.audit).read() and ph.lower() not in open(gw.audit).read().lower()
    if "{b64}" in url_template:
        assert b64 not in open(gw.audit).read(), "the encoded placeholder reached the audit log"


def test_another_sessions_placeholder_is_blocked_even_to_a_bound_host(gw, upstream):
    a, b = new_session(gw, source=None, token=True), new_session(gw)
    ph_a = a["placeholders"]["GITHUB_TOKEN"]
    status, headers, _, err = curl_https(gw, "https://api.example.test/user", "-H",
                                         f"Authorization: Bearer {ph_a}")  # as session b
    assert status == 403 and headers.get("x-airlock-reason") == "credential_leak_blocked", err
    assert upstream.requests == []
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["session"] == b["id"] and leak["placeholder_session"] == a["id"], leak


def test_never_in_cleartext_nor_in_a_tunnels_name(gw, upstream):
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    status, _ = curl("-H", f"Authorization: Bearer {ph}", "http://web.test:8080/")
    assert status == 403
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", PROXY, "-k",
                          f"https://{ph}.other.example.test/"], capture_output=True,
                         env=CLEAN_ENV)
    assert out.returncode != 0
    leaks = wait_events(gw, "credential.leak_blocked", 2)
    assert sorted(x["where"] for x in leaks) == ["connect", "header:Authorization"], leaks
    assert upstream.requests == []
    assert ph[4:] not in open(gw.audit).read().lower(), "a placeholder reached the audit log"


def test_a_placeholder_in_a_dns_name_is_refused_and_not_logged(gw):
    """DNS exfiltration of a placeholder: the responder refuses the name without asking
    upstream, and records the credential, never the name."""
    from test_dns_responder import query
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    r = query(ph[4:].upper() + ".api.example.test")  # re-cased, its prefix dropped
    assert r["rcode"] == 5, r  # REFUSED
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["where"] == "dns" and leak["credential"] == "github" and leak["session"] == s["id"]
    assert ph[4:] not in open(gw.audit).read().lower()


@pytest.mark.parametrize("credential,args", [
    ("GITHUB_TOKEN", lambda ph: ["-H", f"Authorization: Bearer {ph}"]),
    ("GIT_TOKEN", lambda ph: ["-u", f"x-access-token:{ph}"]),
])
def test_an_upstream_that_reflects_the_token_shows_the_sandbox_only_the_placeholder(
        gw, upstream, credential, args):
    s = new_session(gw)
    ph = s["placeholders"][credential]
    host = "api.example.test" if credential == "GITHUB_TOKEN" else "git.example.test"
    status, headers, body, err = curl_https(gw, f"https://{host}/echo", *args(ph))
    assert status == 200, err
    sent = upstream.requests[-1].header("authorization")
    assert gw.token in sent or gw.token in base64.b64decode(sent.split()[1]).decode()
    seen = body.decode() + headers.get("x-echo-authorization", "")
    assert gw.token not in seen, "the real token reached the sandbox"
    assert sent.split()[1] not in seen, "the token, as it was sent, reached the sandbox"
    if credential == "GITHUB_TOKEN":
        assert headers["x-echo-authorization"] == f"Bearer {ph}"
        assert body.decode() == '{"authorization": "Bearer %s"}' % ph
    else:
        encoded = base64.b64encode(f"x-access-token:{ph}".encode()).decode()
        assert headers["x-echo-authorization"] == f"Basic {encoded}"
    wheres = {r["where"] for r in wait_events(gw, "credential.reflection_blocked", 2)}
    assert wheres == {"header:X-Echo-Authorization", "body"}, wheres


@pytest.mark.parametrize("layout", ["json", "split", "chunked"])
def test_a_placeholder_in_a_request_body_to_an_unbound_host_is_blocked(gw, upstream, tmp_path,
                                                                        layout):
    """Bodies are scanned as they stream, across read boundaries: the request is cut before it
    completes upstream and answered 403."""
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    if layout == "json":
        body = ('{"messages": [{"role": "user", "content": "use ' + ph + '"}]}').encode()
    else:  # the placeholder straddles the gateway's 64 KiB body slices
        body = b"x" * (65536 - 20) + ph.encode() + b"y" * 100000
    (tmp_path / "body").write_bytes(body)
    args = ["--data-binary", f"@{tmp_path / 'body'}", "-H", "Content-Type: application/json"]
    if layout == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    status, headers, _, err = curl_https(gw, "https://other.example.test/v1/chat", *args)
    assert status == 403 and headers.get("x-airlock-reason") == "credential_leak_blocked", err
    # Cut before it completed: at most the bytes before the placeholder went on.
    assert ph[4:].encode() not in b"".join(r.body for r in upstream.requests)
    req = wait_events(gw, "http.request", 1, reason="credential_leak_blocked")[0]
    assert req["bytes_up"] < (len(body) if layout != "json" else 1024), req
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["where"] == "body" and leak["credential"] == "github", leak
    req = wait_events(gw, "http.request", 1, reason="credential_leak_blocked")[0]
    assert req["status"] == 403 and req["decision"] == "deny", req
    # The same body to the bound host goes through, placeholder and all (it is not a secret).
    status, _, answer, err = curl_https(gw, "https://api.example.test/upload", *args)
    assert status == 200, err
    assert json.loads(answer) == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_a_redirect_to_another_host_resending_the_placeholder_is_blocked(gw, upstream):
    """The gateway follows no redirect; a client that re-sends the placeholder to the redirect's
    target (curl --location-trusted) is blocked there."""
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    status, headers, _, err = curl_https(
        gw, "https://api.example.test/redirect?to=https://other.example.test/landing",
        "--location-trusted", "-H", f"Authorization: Bearer {ph}")
    assert status == 403 and headers.get("x-airlock-reason") == "credential_leak_blocked", err
    assert [r.target.split("?")[0] for r in upstream.requests] == ["/redirect"]
    assert upstream.requests[0].header("authorization") == f"Bearer {gw.token}"
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["where"] == "header:Authorization" and leak["host"] == "other.example.test", leak


def test_python_requests_with_a_bearer_placeholder(gw, upstream):
    import requests
    s = new_session(gw)
    ph = s["placeholders"]["GITHUB_TOKEN"]
    r = requests.get("https://api.example.test/user", headers={"Authorization": f"Bearer {ph}"},
                     proxies={"https": PROXY}, verify=gw.ca, timeout=20)
    assert r.status_code == 200, r.text
    assert upstream.requests[-1].header("authorization") == f"Bearer {gw.token}"
    r = requests.get("https://other.example.test/user",
                     headers={"Authorization": f"Bearer {ph}"}, proxies={"https": PROXY},
                     verify=gw.ca, timeout=20)
    assert r.status_code == 403 and r.headers["X-Airlock-Reason"] == "credential_leak_blocked"
    assert r.json()["reason"] == "credential_leak_blocked"
