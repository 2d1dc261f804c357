"""TLS inspection: a rule with `inspect: true` makes the gateway terminate TLS with a leaf it mints
from its own CA, decide every HTTP request inside the tunnel against the rule's methods and paths,
insist that Host names the SNI, and reach the upstream over TLS verified against
`tls.upstream_ca_file`. Real clients (curl, requests, urllib in X509_STRICT mode, openssl
s_client, git, Node, a WebSocket client) must accept the minted certificate; the upstreams are
Python `ssl` servers with a throw-away PKI (tls_upstreams.py) that record what they receive, and
the audit log must say what happened."""
import asyncio
import base64
import datetime
import hashlib
import json
import os
import socket
import ssl
import stat
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, CTL_BIN, PROXY, Gateway
from test_smuggling import CORPUS as SMUGGLING_CORPUS
from tls_upstreams import (BLOCK, HttpsUpstream, Pki, PlainServer, WS_GUID, pattern_blocks,
                           read_ws_frame, ws_frame)

PROXY_ADDRESS = ("127.0.0.1", 3128)
ASAN = "asan" in os.path.basename(os.path.normpath(BUILD))
# Release: a GiB each way, generated on the fly; sanitizer builds are far slower.
LARGE = (64 << 20) if ASAN else (1 << 30)

POLICY = """
version: v1
name: inspect
egress:
  - id: acme-api
    hosts: [api.example.test]
    inspect: true
    http:
      methods: [GET]
      paths: ["/repos/acme/**"]
  - id: open-api
    hosts: [open.example.test, other.example.test]
    inspect: true
  - id: broken-upstreams
    hosts: [expired.example.test, notyet.example.test, wrongname.example.test,
            untrusted.example.test, tls11.example.test, plaintext.example.test]
    inspect: true
  - id: passthrough
    hosts: [plain.example.test]
private:
  - id: upstreams
    cidr: 127.0.0.0/24
    ports: [443]
"""

# name -> (upstream, address). Every name of the "good" upstream is on its certificate.
NAMES = {
    "api.example.test": ("good", "127.0.0.5"),
    "open.example.test": ("good", "127.0.0.5"),
    "other.example.test": ("good", "127.0.0.5"),
    "plain.example.test": ("good", "127.0.0.5"),
    "expired.example.test": ("expired", "127.0.0.6"),
    "wrongname.example.test": ("wrongname", "127.0.0.7"),
    "untrusted.example.test": ("untrusted", "127.0.0.8"),
    "notyet.example.test": ("notyet", "127.0.0.9"),
    "tls11.example.test": ("tls11", "127.0.0.10"),
    "plaintext.example.test": ("plaintext", "127.0.0.11"),
}

# Subprocesses see no proxy settings but the ones a test gives them.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    day = datetime.timedelta(days=1)
    p.good = p.leaf("good", ["api.example.test", "open.example.test", "other.example.test",
                             "plain.example.test"])
    p.expired = p.leaf("expired", ["expired.example.test"], not_before=-3 * day,
                       not_after=-day)
    p.notyet = p.leaf("notyet", ["notyet.example.test"], not_before=2 * day, not_after=3 * day)
    p.wrongname = p.leaf("wrongname", ["somewhere-else.example.test"])
    p.untrusted = p.leaf("untrusted", ["untrusted.example.test"], rogue=True)
    p.tls11 = p.leaf("tls11", ["tls11.example.test"])
    return p


@pytest.fixture(scope="module")
def upstreams(pki):
    ups = {
        "good": HttpsUpstream("127.0.0.5", 443, *pki.good),
        "expired": HttpsUpstream("127.0.0.6", 443, *pki.expired),
        "wrongname": HttpsUpstream("127.0.0.7", 443, *pki.wrongname),
        "untrusted": HttpsUpstream("127.0.0.8", 443, *pki.untrusted),
        "notyet": HttpsUpstream("127.0.0.9", 443, *pki.notyet),
        "tls11": HttpsUpstream("127.0.0.10", 443, *pki.tls11, legacy_tls=True),
        "plaintext": PlainServer("127.0.0.11", 443),
    }
    yield ups
    for u in ups.values():
        u.close()


@pytest.fixture
def gw(tmp_path, dns, no_canary_hits, pki, upstreams):
    """The gateway with the inspecting policy, its generated CA at `gw.ca`, and a session for
    127.0.0.1. `no_canary_hits` first: it resets the stub DNS, which is then filled here."""
    for name, (_, address) in NAMES.items():
        dns.set(name, [("A", address, 60)])
    for u in upstreams.values():
        u.reset()
    g = Gateway(str(tmp_path), dns, policies={"inspect": POLICY},
                extra_config=f"tls:\n  upstream_ca_file: {pki.ca_cert}\n")
    try:
        g.ca = os.path.join(str(tmp_path), "state", "ca.crt")
        g.ca_key = os.path.join(str(tmp_path), "state", "ca.key")
        assert poll(lambda: os.path.exists(g.ca) and os.path.getsize(g.ca) > 0), \
            "the gateway generated no CA certificate in its state_dir"
        g.session(policy="inspect")
    except BaseException:
        g.stop()
        raise
    yield g
    # Connections a failed test left open (a makefile() keeps a socket's fd past close()) would
    # hold up the gateway's drain: end them first.
    while OPEN_SOCKETS:
        sock = OPEN_SOCKETS.pop()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    g.stop()


def restart_with(g, text):
    """Restarts the gateway with `text` appended to its config: indented keys continue `tls:`
    (the last section), unindented ones start a section."""
    g.stop()
    with open(g.config, "a") as f:
        f.write(text)
    g.start()


# --- helpers -------------------------------------------------------------------------------------

OPEN_SOCKETS = []  # every client socket a test opened, ended by the gw fixture

def poll(predicate, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def client_context(ca, alpn=None):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def connect_tunnel(host, port=443, timeout=10):
    """A plain socket to the proxy after `CONNECT host:port` got 200 (nothing past the head
    read)."""
    s = socket.create_connection(PROXY_ADDRESS, timeout=timeout)
    OPEN_SOCKETS.append(s)
    authority = f"{host}:{port}"
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        raise AssertionError(f"CONNECT {authority} was answered {head!r}")
    return s


def tunnel(host, ca, alpn=None, timeout=10):
    """A TLS connection through the proxy, verified against `ca` for `host`."""
    s = connect_tunnel(host, timeout=timeout)
    try:
        t = client_context(ca, alpn).wrap_socket(s, server_hostname=host)
        OPEN_SOCKETS.append(t)
        return t
    except BaseException:
        s.close()
        raise


def request(method, target, host, headers=(), body=None, close=False):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Response:
    def __init__(self, status, headers, body=b""):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[-1] if v else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def read_head(f):
    line = f.readline(65537)
    if not line:
        raise EOFError("the connection closed before a response")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = {}
    while True:
        h = f.readline(65537)
        if not h:
            raise EOFError("the connection closed inside a response head")
        if h in (b"\r\n", b"\n"):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return Response(int(parts[1]), headers)


def read_response(f, head_only=False):
    """The next final response on `f` (1xx interim answers skipped, except 101); `head_only`
    for the answer to HEAD."""
    r = read_head(f)
    while 100 <= r.status < 200 and r.status != 101:
        r = read_head(f)
    if head_only or r.status in (101, 204, 304):
        return r
    if "chunked" in (r.header("transfer-encoding") or "").lower():
        body = b""
        while True:
            size = int(f.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline(16)
        r.body = body
    elif r.header("content-length") is not None:
        r.body = f.read(int(r.header("content-length")))
    else:
        r.body = read_to_eof(f)
    return r


def read_to_eof(f):
    """Everything until the peer closes; a TLS peer that closes without close_notify counts as
    closed. A timeout is not an end: it raises."""
    out = b""
    while True:
        try:
            d = f.read1(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            return out
        except TimeoutError:
            raise AssertionError(f"the gateway kept the connection open; it sent {out[:300]!r}")
        if not d:
            return out
        out += d


def curl_https(g, url, *args, timeout=20):
    """curl through the proxy, trusting the gateway's CA: (status, headers of the final
    response, body, stderr)."""
    hdr = os.path.join(g.dir, f"curl-headers-{time.monotonic_ns()}")
    mark = b"\n@@curl-status@@"
    cmd = ["curl", "-sS", "--max-time", str(timeout), "--proxy", PROXY, "--cacert", g.ca,
           "-D", hdr, "-o", "-", "-w", mark.decode() + "%{http_code}@@", url, *args]
    out = subprocess.run(cmd, capture_output=True, env=CLEAN_ENV, timeout=timeout + 10)
    # One status per URL: the bodies, concatenated, and the last status.
    parts = out.stdout.split(mark)
    body = parts[0] + b"".join(p.split(b"@@", 1)[1] for p in parts[1:-1])
    code = parts[-1].split(b"@@", 1)[0] if len(parts) > 1 else b""
    headers = {}
    if os.path.exists(hdr):
        with open(hdr, "rb") as f:
            blocks = [b for b in f.read().split(b"\r\n\r\n") if b.strip()]
        os.unlink(hdr)
        for line in blocks[-1].split(b"\r\n")[1:] if blocks else []:
            k, v = line.decode("latin-1").split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(code or 0), headers, body, out.stderr.decode(errors="replace")


def events(recs, event, **match):
    return [r for r in recs if r.get("event") == event
            and all(r.get(k) == v for k, v in match.items())]


def wait_events(g, event, n, **match):
    """The audit log's `event` records matching `match`, once there are at least n (or after the
    deadline, whatever there is)."""
    return events(g.records(lambda r: len(events(r, event, **match)) >= n, timeout=5), event,
                  **match)


def cert_text(der):
    return subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                          capture_output=True, check=True).stdout.decode()


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def openssl_x509(path, *args):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def ext_value(text, name):
    """The first line of extension `name` in `openssl x509 -text` output."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(name + ":"):
            return lines[i + 1].strip()
    return None


def openssl_date(value):
    return datetime.datetime.strptime(value, "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=datetime.timezone.utc)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_stalled(read, timeout=60):
    """Polls read() (a count that grows while bytes flow) until it stops growing between two
    looks half a second apart and is above zero; its value then, or None on the deadline."""
    last = [-1]

    def stalled():
        now, prev = read(), last[0]
        last[0] = now
        if now > 0 and now == prev:
            return True
        time.sleep(0.5)
        return False
    return last[0] if poll(stalled, timeout=timeout, interval=0) else None


def vm_hwm_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# --- the headline --------------------------------------------------------------------------------

def test_inspected_rule_decides_every_request(gw, upstreams):
    api = upstreams["good"]
    status, headers, body, err = curl_https(gw, "https://api.example.test/repos/acme/x")
    assert status == 200, err
    assert body == b"hello GET /repos/acme/x"
    assert [(r.method, r.target) for r in api.requests] == [("GET", "/repos/acme/x")]
    assert api.requests[0].header("host") == "api.example.test"
    assert api.snis and set(api.snis) == {"api.example.test"}, api.snis

    denials = [(["-X", "POST", "-d", "x=1"], "https://api.example.test/repos/acme/x",
                "method_not_allowed"),
               ([], "https://api.example.test/repos/other/x", "path_not_allowed")]
    for args, url, reason in denials:
        status, headers, body, err = curl_https(gw, url, *args)
        assert status == 403, (url, err)
        assert headers.get("x-airlock-reason") == reason
        j = json.loads(body)
        assert j["reason"] == reason and j["error"] and j["hint"], j
    assert len(api.requests) == 1, f"a denied request reached the upstream: {api.requests}"

    reqs = wait_events(gw, "http.request", 3)
    assert [(r["method"], r["path"], r["status"], r["decision"], r["reason"]) for r in reqs] == [
        ("GET", "/repos/acme/x", 200, "allow", "allowed"),
        ("POST", "/repos/acme/x", 403, "deny", "method_not_allowed"),
        ("GET", "/repos/other/x", 403, "deny", "path_not_allowed")]
    for r in reqs:
        assert r["rule"] == "acme-api" and r.get("tls") == "inspected", r
        assert r["host"] == "api.example.test" and r["port"] == 443, r
    assert reqs[0].get("bytes_down", 0) >= len(b"hello GET /repos/acme/x"), reqs[0]
    opens = events(gw.records(), "connection.open")
    assert len(opens) == 3
    for o in opens:
        assert (o["decision"], o["proto"], o.get("tls"), o["rule"]) == \
            ("allow", "tls", "inspected", "acme-api"), o
    for r in reqs:  # denied ones too (0 is fine): one schema for every request record
        assert "bytes_up" in r and "bytes_down" in r, f"a request record without bytes: {r}"


def test_a_denial_closes_the_connection(gw, upstreams):
    """After a 403 inside the tunnel the gateway closes: a request pipelined behind the denied
    one is never served."""
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("DELETE", "/repos/acme/x", "api.example.test") +
              request("GET", "/repos/acme/after-denial", "api.example.test"))
    r = read_response(f)
    assert r.status == 403 and r.header("x-airlock-reason") == "method_not_allowed", r
    assert r.json()["reason"] == "method_not_allowed"
    assert read_to_eof(f) == b"", "the connection stayed open after a denial"
    t.close()
    assert api.requests == []
    reqs = wait_events(gw, "http.request", 1)
    assert [(r["method"], r["status"]) for r in reqs] == [("DELETE", 403)]


def test_query_values_are_redacted_in_the_audit_log(gw, upstreams):
    api = upstreams["good"]
    status, _, body, err = curl_https(
        gw, "https://api.example.test/repos/acme/search?q=s3cr3t&page=2")
    assert status == 200, err
    assert api.requests[-1].target == "/repos/acme/search?q=s3cr3t&page=2"
    rec = wait_events(gw, "http.request", 1)[0]
    assert rec["path"] == "/repos/acme/search?q=_&page=_"
    with open(gw.audit) as f:
        assert "s3cr3t" not in f.read()


# --- the minted certificate and the clients that must accept it ----------------------------------

def test_minted_leaf_certificate(gw):
    restart_with(gw, "  leaf_validity_hours: 2\n")
    t = tunnel("api.example.test", gw.ca, alpn=["h2", "http/1.1"])
    assert t.selected_alpn_protocol() == "http/1.1", "only http/1.1 may be offered"
    leaf = cert_text(t.getpeercert(binary_form=True))
    t.close()
    ca = subprocess.run(["openssl", "x509", "-in", gw.ca, "-noout", "-text"], capture_output=True,
                        text=True, check=True).stdout
    assert ext_value(leaf, "X509v3 Subject Alternative Name") == "DNS:api.example.test"
    assert "id-ecPublicKey" in leaf and "prime256v1" in leaf, "the leaf is not EC P-256"
    ca_subject = openssl_x509(gw.ca, "-subject").split("=", 1)[1].strip()
    issuer = [l for l in leaf.splitlines() if l.strip().startswith("Issuer:")][0]
    assert issuer.split(":", 1)[1].strip() == ca_subject
    ski = ext_value(ca, "X509v3 Subject Key Identifier")
    aki = ext_value(leaf, "X509v3 Authority Key Identifier")
    assert ski and aki and aki.replace("keyid:", "") == ski, (aki, ski)
    assert ext_value(leaf, "X509v3 Subject Key Identifier")
    assert "CA:TRUE" not in leaf
    not_before = openssl_date([l for l in leaf.splitlines() if "Not Before" in l][0]
                              .split(":", 1)[1].strip())
    not_after = openssl_date([l for l in leaf.splitlines() if "Not After" in l][0]
                             .split(":", 1)[1].strip())
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not_before <= now + datetime.timedelta(minutes=1)
    assert now + datetime.timedelta(hours=1) < not_after <= now + datetime.timedelta(
        hours=2, minutes=5), f"leaf_validity_hours: 2, but the leaf ends {not_after}"
    # The CA itself: EC P-256, a CA that signs certificates.
    assert "prime256v1" in ca and "CA:TRUE" in ca and "Certificate Sign" in ca


def test_python_requests_accepts_the_minted_certificate(gw, upstreams):
    requests = pytest.importorskip("requests")
    api = upstreams["good"]
    s = requests.Session()
    s.trust_env = False
    r = s.get("https://api.example.test/repos/acme/via-requests", proxies={"https": PROXY},
              verify=gw.ca, timeout=10)
    s.close()
    assert r.status_code == 200 and r.text == "hello GET /repos/acme/via-requests"
    assert [x.target for x in api.requests] == ["/repos/acme/via-requests"]
    assert wait_events(gw, "http.request", 1, path="/repos/acme/via-requests")[0]["status"] == 200


def test_urllib_with_x509_strict_accepts_the_minted_certificate(gw, upstreams):
    api = upstreams["good"]
    ctx = client_context(gw.ca)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert not ctx.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": PROXY}),
                                         urllib.request.HTTPSHandler(context=ctx))
    with opener.open("https://api.example.test/repos/acme/via-urllib", timeout=10) as r:
        assert r.status == 200 and r.read() == b"hello GET /repos/acme/via-urllib"
    assert [x.target for x in api.requests] == ["/repos/acme/via-urllib"]


def test_openssl_s_client_verifies_the_minted_certificate(gw, upstreams):
    api = upstreams["good"]
    out = subprocess.run(
        ["openssl", "s_client", "-proxy", "127.0.0.1:3128", "-connect", "api.example.test:443",
         "-servername", "api.example.test", "-CAfile", gw.ca, "-verify_return_error",
         "-verify_hostname", "api.example.test", "-x509_strict", "-ign_eof"],
        input=request("GET", "/repos/acme/via-s-client", "api.example.test", close=True),
        capture_output=True, timeout=20)
    stdout, stderr = out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in stdout, stderr
    assert "HTTP/1.1 200" in stdout and "hello GET /repos/acme/via-s-client" in stdout, stdout
    assert [x.target for x in api.requests] == ["/repos/acme/via-s-client"]
    # (Its exit status also depends on a close_notify at the end: see the next test.)


def test_connection_close_ends_with_close_notify(gw, upstreams):
    """After `Connection: close` the gateway ends TLS properly. Without a close_notify, OpenSSL 3
    clients report truncation ("unexpected eof while reading"; s_client exits 1) and a body
    delimited by the close could be cut short unnoticed."""
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "/repos/acme/bye", "api.example.test", close=True))
    r = read_response(f)
    assert r.status == 200 and r.body == b"hello GET /repos/acme/bye", r
    try:
        rest = f.read1(65536)
    except ssl.SSLEOFError:
        raise AssertionError("the gateway closed the connection without a TLS close_notify")
    finally:
        t.close()
    assert rest == b""


def git(*args, cwd=None, env=None):
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.test",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_git_clone_through_inspection(gw, upstreams, tmp_path):
    """git's dumb HTTP protocol: every request is a GET under /repos/acme/, which the rule
    allows."""
    api = upstreams["good"]
    env = dict(CLEAN_ENV, HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    src = tmp_path / "src"
    assert git("init", "-q", str(src), env=env).returncode == 0
    (src / "README").write_text("inspected clone\n")
    git("add", "README", cwd=src, env=env)
    assert git("commit", "-q", "-m", "first", cwd=src, env=env).returncode == 0
    head = git("rev-parse", "HEAD", cwd=src, env=env).stdout.strip()
    bare = tmp_path / "served" / "project.git"
    assert git("clone", "-q", "--bare", str(src), str(bare), env=env).returncode == 0
    assert git("update-server-info", cwd=bare, env=env).returncode == 0
    api.static("/repos/acme/project.git/", str(bare))

    clone_env = dict(env, https_proxy=PROXY, GIT_SSL_CAINFO=gw.ca)
    dst = tmp_path / "dst"
    out = git("clone", "https://api.example.test/repos/acme/project.git", str(dst), env=clone_env)
    assert out.returncode == 0, out.stderr
    assert (dst / "README").read_text() == "inspected clone\n"
    assert git("rev-parse", "HEAD", cwd=dst, env=env).stdout.strip() == head
    targets = [r.target for r in api.requests]
    assert "/repos/acme/project.git/info/refs?service=git-upload-pack" in targets, targets
    assert {r.method for r in api.requests} == {"GET"}
    recs = wait_events(gw, "http.request", len(api.requests))
    assert len(recs) >= len(api.requests)
    assert any(r["path"] == "/repos/acme/project.git/info/refs?service=_" and r["status"] == 200
               for r in recs), recs


NODE_CLIENT = r"""
const http = require('http'), tls = require('tls'), fs = require('fs');
const [caFile, host, path] = process.argv.slice(2);
const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
const req = http.request({host: '127.0.0.1', port: 3128, method: 'CONNECT',
                          path: host + ':443', headers: {Host: host + ':443'}});
req.on('error', (e) => done({error: 'proxy: ' + e.code}));
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) return done({error: 'CONNECT ' + res.statusCode});
  const opts = {socket, servername: host, ALPNProtocols: ['h2', 'http/1.1']};
  if (caFile) opts.ca = fs.readFileSync(caFile);  // verification stays on either way
  const t = tls.connect(opts, () => {
    const r = {authorized: t.authorized, alpn: t.alpnProtocol, response: ''};
    t.on('data', (d) => { r.response += d; });
    t.on('end', () => done(r));
    t.write('GET ' + path + ' HTTP/1.1\r\nHost: ' + host + '\r\nConnection: close\r\n\r\n');
  });
  t.on('error', (e) => done({error: e.code || String(e)}));
});
req.end();
setTimeout(() => done({error: 'timeout'}), 15000);
"""


def test_node_tls_verifies_the_minted_certificate(gw, upstreams, tmp_path):
    api = upstreams["good"]
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT)

    def node(ca, path):
        out = subprocess.run(["node", str(script), ca, "api.example.test", path],
                             capture_output=True, text=True, timeout=30, env=CLEAN_ENV)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    # Without the gateway's CA Node refuses the handshake: it really verifies.
    r = node("", "/repos/acme/untrusting-node")
    assert "error" in r and r["error"] != "timeout", r
    r = node(gw.ca, "/repos/acme/via-node")
    assert r.get("authorized") is True, r
    assert r["alpn"] == "http/1.1"
    assert r["response"].startswith("HTTP/1.1 200")
    assert r["response"].endswith("hello GET /repos/acme/via-node")
    assert [x.target for x in api.requests] == ["/repos/acme/via-node"]


def test_websocket_over_inspected_tls_by_hand(gw, upstreams):
    up = upstreams["good"]
    t = tunnel("open.example.test", gw.ca)
    f = t.makefile("rb")
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    t.sendall(request("GET", "/ws", "open.example.test",
                      ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                       "Sec-WebSocket-Version: 13"]))
    r = read_response(f)
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == base64.b64encode(
        hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    for message in (b"hello over wss", b"x" * 70000):
        t.sendall(ws_frame(1 if len(message) < 100 else 2, message, mask=os.urandom(4)))
        opcode, payload = read_ws_frame(f)
        assert payload == message
    t.sendall(ws_frame(8, b"\x03\xe8", mask=os.urandom(4)))
    assert read_ws_frame(f)[0] == 8
    t.close()
    assert up.ws_messages == [b"hello over wss", b"x" * 70000]
    rec = wait_events(gw, "http.request", 1, path="/ws")
    assert rec and rec[0]["status"] == 101 and rec[0].get("tls") == "inspected"


def test_websocket_client_library_over_wss(gw, upstreams):
    websockets = pytest.importorskip("websockets")
    up = upstreams["good"]
    raw = connect_tunnel("open.example.test")

    async def talk():
        async with websockets.connect(
                "wss://open.example.test/ws", sock=raw, ssl=client_context(gw.ca),
                server_hostname="open.example.test", open_timeout=10) as ws:
            await ws.send("library hello")
            return await asyncio.wait_for(ws.recv(), 10)

    try:
        assert asyncio.run(talk()) == "library hello"
    finally:
        raw.close()
    assert up.ws_messages == [b"library hello"]


# --- Host must be the SNI ------------------------------------------------------------------------

@pytest.mark.parametrize("first", [
    request("GET", "/repos/acme/x", "evil.example.test"),
    request("GET", "/repos/acme/x", "other.example.test"),  # allowed by another rule: fronting
    request("GET", "/repos/acme/x", "api.example.test:8443"),
    request("GET", "/repos/acme/x", "api.example.test.evil.test"),
    request("GET", "https://other.example.test/repos/acme/x", "api.example.test"),
], ids=["unlisted-host", "other-allowed-host", "wrong-port", "suffixed", "absolute-form"])
def test_host_other_than_sni_is_421(gw, upstreams, first):
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(first)
    r = read_response(f)
    t.close()
    assert r.status == 421 and r.header("x-airlock-reason") == "host_sni_mismatch", r
    assert api.requests == [], "a mismatched request reached the upstream"
    rec = wait_events(gw, "http.request", 1)
    assert [(x["status"], x["reason"]) for x in rec] == [(421, "host_sni_mismatch")]


@pytest.mark.parametrize("host", ["API.Example.Test", "api.example.test:443"])
def test_host_equal_to_sni_in_another_spelling_is_served(gw, upstreams, host):
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "/repos/acme/spelling", host, close=True))
    r = read_response(f)
    t.close()
    assert r.status == 200, r
    assert [x.target for x in api.requests] == ["/repos/acme/spelling"]
    assert api.requests[0].header("host").lower() in ("api.example.test", "api.example.test:443")


def test_absolute_form_naming_the_sni_reaches_the_upstream_in_origin_form(gw, upstreams):
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "https://api.example.test/repos/acme/abs?x=1", "api.example.test",
                      close=True))
    r = read_response(f)
    t.close()
    assert r.status == 200, r
    assert [x.target for x in api.requests] == ["/repos/acme/abs?x=1"]


def test_second_request_for_another_host_on_keep_alive_is_421(gw, upstreams):
    """Domain fronting on a kept-alive connection: the first request is served, the second,
    naming another (allowed) host, is refused and never reaches any upstream."""
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "/repos/acme/first", "api.example.test"))
    r = read_response(f)
    assert r.status == 200 and r.body == b"hello GET /repos/acme/first"
    t.sendall(request("GET", "/repos/acme/second", "other.example.test"))
    r = read_response(f)
    assert r.status == 421 and r.header("x-airlock-reason") == "host_sni_mismatch", r
    t.close()
    assert [x.target for x in api.requests] == ["/repos/acme/first"]
    recs = wait_events(gw, "http.request", 2)
    assert [(x["path"], x["status"]) for x in recs] == [("/repos/acme/first", 200),
                                                        ("/repos/acme/second", 421)]


@pytest.mark.parametrize("name,message", SMUGGLING_CORPUS, ids=[c[0] for c in SMUGGLING_CORPUS])
def test_smuggling_inside_the_tunnel_is_refused(gw, upstreams, name, message):
    """test_smuggling's corpus, in origin form inside an inspected tunnel: refused, the
    connection closed, and nothing reaches the upstream."""
    up = upstreams["good"]
    message = message.replace("http://web.test:8080", "").replace("web.test:8080",
                                                                  "open.example.test")
    t = tunnel("open.example.test", gw.ca)
    t.sendall(message.encode("latin-1"))
    resp = read_to_eof(t.makefile("rb"))
    t.close()
    status = int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else 0
    assert status in (400, 414, 421, 431, 501, 505), resp[:300]
    assert b"\nHTTP/1.1 " not in resp, "a second response: a smuggled request got through"
    assert up.requests == [], up.requests


# --- upstream certificate failures ---------------------------------------------------------------

@pytest.mark.parametrize("name,upstream,tls_error", [
    ("expired.example.test", "expired", "certificate_expired"),
    ("notyet.example.test", "notyet", "certificate_not_yet_valid"),
    ("wrongname.example.test", "wrongname", "hostname_mismatch"),
    ("untrusted.example.test", "untrusted", "unknown_ca"),
    ("tls11.example.test", "tls11", ("protocol_version", "handshake_failed")),  # TLS <= 1.1
    ("plaintext.example.test", "plaintext", "handshake_failed"),  # no TLS at all
])
def test_upstream_tls_failure_is_502(gw, upstreams, name, upstream, tls_error):
    up = upstreams[upstream]
    status, headers, body, err = curl_https(gw, f"https://{name}/x")
    assert status == 502, err
    assert headers.get("x-airlock-reason") == "upstream_tls_failed"
    assert json.loads(body)["reason"] == "upstream_tls_failed"
    if isinstance(up, PlainServer):
        assert up.connections >= 1, "the gateway never tried the upstream"
    else:
        if upstream != "tls11":  # the SNI is seen once the versions agree
            assert up.snis and set(up.snis) == {name}, "the gateway never tried (by SNI)"
        # The upstream's thread records its failed handshake after the gateway has given up.
        assert poll(lambda: up.handshake_errors), "the upstream saw no failed handshake"
        assert up.requests == [], "a request reached an upstream that failed verification"
    closes = wait_events(gw, "connection.close", 1, reason="upstream_tls_failed")
    assert closes, events(gw.records(), "connection.close")
    assert closes[0]["host"] == name
    assert closes[0].get("tls_error") in (tls_error if isinstance(tls_error, tuple)
                                          else (tls_error,)), closes[0]


# --- streaming -----------------------------------------------------------------------------------

def test_server_sent_events_arrive_as_sent(gw, upstreams):
    """The upstream sends event 1 and then waits until the test has seen it at the client: a
    gateway that buffered the response would make the client time out."""
    up = upstreams["good"]
    t = tunnel("open.example.test", gw.ca, timeout=8)
    f = t.makefile("rb")
    t.sendall(request("GET", "/sse", "open.example.test", ["Accept: text/event-stream"]))
    r = read_head(f)
    assert r.status == 200 and r.header("content-type") == "text/event-stream", r
    seen = b""
    try:
        while b"data: event one" not in seen:
            seen += f.readline(65537)
    except socket.timeout:
        raise AssertionError(f"event 1 did not reach the client while the stream was open; "
                             f"got {seen!r}")
    assert up.sse_waited is None, "the upstream had already finished the response"
    up.sse_release.set()
    while b"data: event two" not in seen:
        line = f.readline(65537)
        assert line, seen
        seen += line
    t.close()
    assert up.sse_waited is True
    assert wait_events(gw, "http.request", 1, path="/sse")[0]["status"] == 200


def test_large_bodies_stream_both_ways(gw, upstreams):
    """LARGE bytes up and LARGE bytes down on one inspected connection, generated and hashed on
    the fly; the gateway's peak RSS must stay far below the body size."""
    up = upstreams["good"]
    t = tunnel("open.example.test", gw.ca, timeout=120)
    f = t.makefile("rb")
    t.sendall(request("POST", "/upload", "open.example.test",
                      ["Content-Type: application/octet-stream", f"Content-Length: {LARGE}"]))
    sent = hashlib.sha256()
    for block in pattern_blocks(LARGE):
        t.sendall(block)
        sent.update(block)
    r = read_response(f)
    assert r.status == 200, r
    assert r.json() == {"bytes": LARGE, "sha256": sent.hexdigest()}

    t.sendall(request("GET", f"/download?bytes={LARGE}", "open.example.test", close=True))
    r = read_head(f)
    assert r.status == 200 and int(r.header("content-length")) == LARGE, r
    got, n = hashlib.sha256(), 0
    while n < LARGE:
        d = f.read1(min(BLOCK, LARGE - n))
        assert d, f"the download ended after {n} bytes"
        got.update(d)
        n += len(d)
    t.close()
    assert got.hexdigest() == up.sent_sha256

    hwm = vm_hwm_bytes(gw.proc.pid)
    if not ASAN:  # ASan's quarantine keeps freed buffers resident, so RSS proves nothing there
        assert hwm < 128 << 20, f"gateway peak RSS {hwm >> 20} MiB for a {LARGE >> 20} MiB body"
    recs = wait_events(gw, "http.request", 2)
    by_path = {x["path"]: x for x in recs}
    assert by_path["/upload"]["status"] == 200, by_path
    assert by_path["/upload"].get("bytes_up", 0) >= LARGE, by_path
    assert by_path["/download?bytes=_"].get("bytes_down", 0) >= LARGE, by_path


def test_a_slow_reader_holds_its_upstream_not_the_gateways_memory(gw, upstreams):
    """A sandbox that stops reading a 1 GiB download inside inspected TLS: the gateway stops
    reading the upstream once about a megabyte waits for the sandbox (and the socket buffers
    are full), instead of encrypting and queueing the rest in memory."""
    good = upstreams["good"]
    curl_https(gw, "https://open.example.test/warm-up")
    before = rss_bytes(gw.proc.pid)
    raw = socket.create_connection(PROXY_ADDRESS, timeout=10)
    OPEN_SOCKETS.append(raw)
    raw.sendall(b"CONNECT open.example.test:443 HTTP/1.1\r\nHost: open.example.test:443\r\n\r\n")
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=gw.ca)
    tls = ctx.wrap_socket(raw, server_hostname="open.example.test")
    tls.sendall(b"GET /download?bytes=%d HTTP/1.1\r\nHost: open.example.test\r\n\r\n" % (1 << 30))
    held = wait_stalled(lambda: good.sent_bytes)
    assert held is not None, "the upstream never stalled"
    assert held < 64 << 20, f"{held >> 20} MiB left the upstream for a reader that reads nothing"
    grown = rss_bytes(gw.proc.pid) - before
    if not ASAN:  # ASan's allocator and quarantine keep more by design
        assert grown < 32 << 20, f"the gateway grew by {grown >> 20} MiB for a stalled download"
    tls.close()


@pytest.mark.parametrize("limit", ["connect_timeout_ms: 300", "header_timeout_ms: 300"])
def test_waiting_for_a_thinking_upstream_is_not_a_timeout(gw, upstreams, limit):
    """connect_timeout bounds the dial and the upstream handshake, header_timeout the arrival
    of a request head; neither may cut a connection whose upstream takes 4x that long to answer
    (the client and the upstream both silent meanwhile): only idle_timeout may."""
    restart_with(gw, f"limits:\n  {limit}\n  idle_timeout_ms: 60000\n")
    api = upstreams["good"]
    t = tunnel("open.example.test", gw.ca)
    f = t.makefile("rb")
    for _ in range(2):
        t.sendall(request("GET", "/slow?ms=1200", "open.example.test"))
        r = read_response(f)
        assert r.status == 200 and r.body == b"slow 1200", r
    t.close()
    assert [x.target for x in api.requests] == ["/slow?ms=1200"] * 2
    assert [x["status"] for x in wait_events(gw, "http.request", 2)] == [200, 200]


def test_chunked_upload_arrives_whole(gw, upstreams, tmp_path):
    up = upstreams["good"]
    body = tmp_path / "chunked.bin"
    with open(body, "wb") as out:
        for block in pattern_blocks(3 << 20):
            out.write(block)
    digest = hashlib.sha256(body.read_bytes()).hexdigest()
    status, _, resp, err = curl_https(
        gw, "https://open.example.test/upload", "-H", "Transfer-Encoding: chunked",
        "-H", "Content-Type: application/octet-stream", "--data-binary", f"@{body}")
    assert status == 200, err
    assert json.loads(resp) == {"bytes": 3 << 20, "sha256": digest}
    assert [(r.method, r.target, r.body_sha256) for r in up.requests] == [
        ("POST", "/upload", digest)]


def test_head_then_get_on_one_connection(gw, upstreams):
    """The answer to HEAD has a Content-Length but no body: the gateway must not wait for one
    (the GET behind it would hang) nor pass bytes of the next answer as its body."""
    up = upstreams["good"]
    t = tunnel("open.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("HEAD", "/h", "open.example.test"))
    head = read_response(f, head_only=True)
    assert head.status == 200, head
    t.sendall(request("GET", "/g", "open.example.test"))
    r = read_response(f)
    t.close()
    assert r.status == 200 and r.body == b"hello GET /g", r
    assert [(x.method, x.target) for x in up.requests] == [("HEAD", "/h"), ("GET", "/g")]
    # HEAD is how clients learn a size without the body: the upstream's Content-Length stays.
    assert head.header("content-length") == str(len(b"hello HEAD /h")), head


def test_expect_100_continue(gw, upstreams, tmp_path):
    up = upstreams["good"]
    body = tmp_path / "body.bin"
    with open(body, "wb") as out:
        for block in pattern_blocks(2 << 20):
            out.write(block)
    digest = hashlib.sha256(body.read_bytes()).hexdigest()
    start = time.monotonic()
    # With a 30 s expect timeout, a 100 that never arrives shows as a slow request.
    status, _, resp, err = curl_https(
        gw, "https://open.example.test/upload", "-v", "-H", "Expect: 100-continue",
        "--expect100-timeout", "30", "-H", "Content-Type: application/octet-stream",
        "--data-binary", f"@{body}", timeout=60)
    elapsed = time.monotonic() - start
    assert status == 200, err
    assert "HTTP/1.1 100 Continue" in err, "curl never saw 100 Continue"
    assert elapsed < 15, f"the upload waited {elapsed:.1f}s for 100 Continue"
    assert json.loads(resp) == {"bytes": 2 << 20, "sha256": digest}
    assert [(r.method, r.target, r.body_len) for r in up.requests] == [("POST", "/upload",
                                                                        2 << 20)]


# --- connections ---------------------------------------------------------------------------------

def test_keep_alive_uses_one_connection_each_side(gw, upstreams):
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    for target in ("/repos/acme/one", "/repos/acme/two"):
        t.sendall(request("GET", target, "api.example.test"))
        r = read_response(f)
        assert r.status == 200 and r.body == f"hello GET {target}".encode()
    t.close()
    assert [x.target for x in api.requests] == ["/repos/acme/one", "/repos/acme/two"]
    assert api.requests[0].conn == api.requests[1].conn, "one upstream connection per request"
    assert len(wait_events(gw, "http.request", 2)) == 2
    assert len(events(gw.records(), "connection.open")) == 1


def test_pipelined_requests_are_answered_in_order(gw, upstreams):
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "/repos/acme/p1", "api.example.test") +
              request("GET", "/repos/acme/p2", "api.example.test") +
              request("GET", "/repos/acme/p3", "api.example.test", close=True))
    bodies = [read_response(f).body for _ in range(3)]
    assert read_to_eof(f) == b""
    t.close()
    assert bodies == [b"hello GET /repos/acme/p1", b"hello GET /repos/acme/p2",
                      b"hello GET /repos/acme/p3"]
    assert [x.target for x in api.requests] == ["/repos/acme/p1", "/repos/acme/p2",
                                                "/repos/acme/p3"]


def test_curl_reuses_the_inspected_connection(gw, upstreams):
    api = upstreams["good"]
    status, _, body, err = curl_https(gw, "https://api.example.test/repos/acme/a",
                                      "https://api.example.test/repos/acme/b")
    assert status == 200, err
    assert body == b"hello GET /repos/acme/ahello GET /repos/acme/b"
    assert [x.target for x in api.requests] == ["/repos/acme/a", "/repos/acme/b"]
    assert len(wait_events(gw, "http.request", 2)) == 2
    assert len(events(gw.records(), "connection.open")) == 1


def test_passthrough_rule_shows_the_upstream_certificate(gw, upstreams, pki):
    up = upstreams["good"]
    # The gateway's CA cannot verify a passthrough connection: the certificate is the upstream's.
    with pytest.raises(ssl.SSLCertVerificationError):
        tunnel("plain.example.test", gw.ca).close()
    t = tunnel("plain.example.test", pki.ca_cert)
    assert t.getpeercert(binary_form=True) == up.cert_der
    f = t.makefile("rb")
    t.sendall(request("GET", "/anything", "plain.example.test", close=True))
    r = read_response(f)
    t.close()
    assert r.status == 200 and r.body == b"hello GET /anything"
    assert up.requests[-1].target == "/anything"
    opens = wait_events(gw, "connection.open", 2, rule="passthrough")
    assert opens, events(gw.records(), "connection.open")
    assert [(o.get("tls"), o["proto"]) for o in opens] == [("passthrough", "tls")] * len(opens)
    assert events(gw.records(), "http.request") == [], "a passthrough tunnel was read"


# --- the CA --------------------------------------------------------------------------------------

def test_generated_ca_survives_restart_and_exports_without_key(gw):
    with open(gw.ca, "rb") as f:
        ca_pem = f.read()
    assert stat.S_IMODE(os.stat(gw.ca_key).st_mode) == 0o600
    with open(gw.ca_key, "rb") as f:
        key_digest = hashlib.sha256(f.read()).digest()
    ca_text = subprocess.run(["openssl", "x509", "-in", gw.ca, "-noout", "-text"],
                             capture_output=True, text=True, check=True).stdout
    assert "prime256v1" in ca_text and "CA:TRUE" in ca_text
    saved = os.path.join(gw.dir, "ca-before-restart.crt")
    with open(saved, "wb") as f:
        f.write(ca_pem)
    assert curl_https(gw, "https://api.example.test/repos/acme/before")[0] == 200

    gw.stop()
    gw.start()
    with open(gw.ca, "rb") as f:
        assert f.read() == ca_pem, "the CA changed across a restart"
    with open(gw.ca_key, "rb") as f:
        same_key = hashlib.sha256(f.read()).digest() == key_digest
    assert same_key, "the CA key changed across a restart"
    assert stat.S_IMODE(os.stat(gw.ca_key).st_mode) == 0o600
    gw.ca = saved  # clients keep trusting the CA they were given before the restart
    status, _, _, err = curl_https(gw, "https://api.example.test/repos/acme/after")
    assert status == 200, err

    out = subprocess.run([CTL_BIN, "ca", "export", "--config", gw.config], capture_output=True,
                         text=True, timeout=10)
    leaked = "PRIVATE KEY" in out.stdout or "PRIVATE KEY" in out.stderr
    assert not leaked, "airlockctl ca export printed a private key"
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("BEGIN CERTIFICATE") == 1, out.stdout
    assert ssl.PEM_cert_to_DER_cert(out.stdout) == pem_to_der(saved)


def test_configured_ca_is_used_for_minting(gw, tmp_path):
    own = tmp_path / "own-ca"
    own.mkdir()
    cert, key = str(own / "ca.crt"), str(own / "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=Operator-provided Airlock CA", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    restart_with(gw, f"  ca_cert: {cert}\n  ca_key: {key}\n")
    generated = gw.ca
    gw.ca = cert
    status, _, body, err = curl_https(gw, "https://api.example.test/repos/acme/own-ca")
    assert status == 200 and body == b"hello GET /repos/acme/own-ca", err
    # The CA generated on the first start no longer verifies the minted leaves.
    t = connect_tunnel("api.example.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        client_context(generated).wrap_socket(t, server_hostname="api.example.test")
    t.close()
    out = subprocess.run([CTL_BIN, "ca", "export", "--config", gw.config], capture_output=True,
                         text=True, timeout=10)
    leaked = "PRIVATE KEY" in out.stdout or "PRIVATE KEY" in out.stderr
    assert not leaked, "airlockctl ca export printed a private key"
    assert ssl.PEM_cert_to_DER_cert(out.stdout) == pem_to_der(cert)


def test_reload_narrowing_a_rule_applies_to_the_next_request_on_a_kept_alive_connection(
        gw, upstreams):
    """A connection opened before a reload is decided by the new policy at its next request:
    narrowing a rule's paths cannot be outlived by a kept-alive inspected connection."""
    api = upstreams["good"]
    t = tunnel("api.example.test", gw.ca)
    f = t.makefile("rb")
    t.sendall(request("GET", "/repos/acme/before", "api.example.test"))
    assert read_response(f).status == 200
    gw.write_policy("inspect", POLICY.replace('paths: ["/repos/acme/**"]',
                                              'paths: ["/repos/acme/public/**"]'))
    status, body = gw.api("POST", "/v1/reload")
    assert status == 200, body
    t.sendall(request("GET", "/repos/acme/after", "api.example.test"))
    r = read_response(f)
    assert r.status == 403 and r.header("x-airlock-reason") == "path_not_allowed", r
    assert [x.target for x in api.requests] == ["/repos/acme/before"]


def test_a_sandbox_that_does_not_trust_the_ca_is_told_by_its_handshake_and_audited(gw, upstreams):
    """Without the gateway's CA a client refuses the minted leaf; nothing reaches the upstream,
    and the close record says why, so an operator can see a sandbox missing the CA."""
    api = upstreams["good"]
    out = subprocess.run(["curl", "-s", "--max-time", "10", "--proxy", PROXY,
                          "--cacert", upstreams["good"].cert,
                          "https://api.example.test/repos/acme/x"],
                         capture_output=True, env=CLEAN_ENV)
    assert out.returncode == 60, out  # peer certificate cannot be authenticated
    assert api.requests == []
    closed = wait_events(gw, "connection.close", 1, reason="client_tls_failed")[0]
    assert "unknown ca" in closed["client_tls_error"], closed


def test_check_config_refuses_an_unusable_ca_with_the_reason(tmp_path):
    """`--check-config` loads a supplied CA: a key of another CA, a key others can read, and a
    certificate without its key are each refused with a reason; a sound pair passes."""
    from conftest import GATEWAY_BIN
    d = str(tmp_path)
    os.makedirs(os.path.join(d, "policies"))
    for name in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/{name}.key", "-out",
                        f"{d}/{name}.crt", "-days", "1", "-subj", f"/CN={name}", "-addext",
                        "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)
        os.chmod(f"{d}/{name}.key", 0o600)

    def check(tls):
        with open(f"{d}/airlock.yaml", "w") as f:
            f.write(f"state_dir: {d}/state\npolicy_dir: {d}/policies\ntls:\n{tls}")
        return subprocess.run([GATEWAY_BIN, "--config", f"{d}/airlock.yaml", "--check-config"],
                              capture_output=True, text=True)

    ok = check(f"  ca_cert: {d}/a.crt\n  ca_key: {d}/a.key\n")
    assert ok.returncode == 0, ok.stderr
    mismatch = check(f"  ca_cert: {d}/a.crt\n  ca_key: {d}/b.key\n")
    assert mismatch.returncode == 1 and "does not match" in mismatch.stderr, mismatch.stderr
    os.chmod(f"{d}/a.key", 0o644)
    readable = check(f"  ca_cert: {d}/a.crt\n  ca_key: {d}/a.key\n")
    assert readable.returncode == 1 and "chmod 600" in readable.stderr, readable.stderr
    alone = check(f"  ca_cert: {d}/a.crt\n")
    assert alone.returncode == 1 and "airlock.yaml:4:" in alone.stderr, alone.stderr
    assert "go together" in alone.stderr
    assert "PRIVATE KEY" not in mismatch.stderr + readable.stderr + alone.stderr
    assert not os.path.exists(f"{d}/state/ca.key"), "a check generated a CA"
