"""HTTP/2 inside inspected TLS (docs/TLS.md, "HTTP/2"): when the sandbox offers h2 and the
upstream chooses it, the gateway speaks h2 on both sides and decides every stream on its own:
allowed and denied streams share one connection, :authority must name the SNI, credentials are
written and leaks blocked per stream, trailers and large bodies pass with flow control, and a
peer that floods the protocol is sent GOAWAY with the reason in the audit log. Real clients
(curl --http2, httpx, a raw python `h2` client for what the others cannot send) and an h2-only
Python upstream that records every stream (h2_upstreams.py).
(PYTEST_DONT_REWRITE: a failed assertion shows its message, never the compared values,
which may be tokens or placeholders.)"""
import hashlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
import pytest

from conftest import BUILD, PROXY, Gateway
from h2_upstreams import H2Upstream
from test_credentials import GITHUB_CREDENTIAL, static_token
from test_inspect import CLEAN_ENV, poll, rss_bytes, wait_events, wait_stalled
from tls_upstreams import HttpsUpstream, Pki, pattern_blocks

ASAN = "asan" in os.path.basename(os.path.normpath(BUILD))
LARGE = (8 << 20) if ASAN else (64 << 20)

POLICY = """
version: v1
name: h2
egress:
  - id: acme-api
    hosts: [api.example.test]
    inspect: true
    http:
      methods: [GET, POST]
      paths: ["/repos/acme/**", "/trailers", "/download", "/upload", "/reset", "/early",
              "/blob", "/hints", "/bye"]
    credentials: [github]
  - id: open
    hosts: [open.example.test, other.example.test]
    inspect: true
  - id: h1-only
    hosts: [h1.example.test]
    inspect: true
  - id: grpc-echo
    hosts: [grpc.example.test]
    inspect: true
    http:
      methods: [POST]
      paths: ["/airlock.test.Echo/Say", "/airlock.test.Echo/Count"]
private:
  - id: upstreams
    cidr: 127.0.0.0/24
    ports: [443]
"""

H2_ADDRESS, H1_ADDRESS, GRPC_ADDRESS = "127.0.0.20", "127.0.0.21", "127.0.0.22"
H2_NAMES = ["api.example.test", "open.example.test", "other.example.test"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.h2 = p.leaf("h2", H2_NAMES)
    p.h1 = p.leaf("h1", ["h1.example.test"])
    p.grpc = p.leaf("grpc", ["grpc.example.test"])
    return p


class EchoService(grpc.GenericRpcHandler):
    """airlock.test.Echo on raw bytes (no generated code): Say answers b"said: " + the request
    with trailing metadata; Count streams N replies; Secret must never be reached."""

    def __init__(self):
        self.calls = []

    def service(self, details):
        method = details.method
        self.calls.append(method)
        if method == "/airlock.test.Echo/Say":
            def say(request, context):
                context.set_trailing_metadata((("x-echo-trailer", "kept"),))
                return b"said: " + request
            return grpc.unary_unary_rpc_method_handler(say)
        if method == "/airlock.test.Echo/Count":
            def count(request, context):
                for i in range(int(request)):
                    yield str(i).encode()
            return grpc.unary_stream_rpc_method_handler(count)
        if method == "/airlock.test.Echo/Secret":
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"secret")
        return None


@pytest.fixture(scope="module")
def grpc_upstream(pki):
    from concurrent import futures
    service = EchoService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[service])
    with open(pki.grpc[1], "rb") as k, open(pki.grpc[0], "rb") as c:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    assert server.add_secure_port(f"{GRPC_ADDRESS}:443", creds) == 443
    server.start()
    yield service
    server.stop(None)


@pytest.fixture(scope="module")
def upstreams(pki):
    h2u = H2Upstream(H2_ADDRESS, 443, *pki.h2)
    h1u = HttpsUpstream(H1_ADDRESS, 443, *pki.h1)
    yield h2u, h1u
    h2u.close()
    h1u.close()


@pytest.fixture
def gw(tmp_path, dns, no_canary_hits, pki, upstreams):
    for name in H2_NAMES:
        dns.set(name, [("A", H2_ADDRESS, 60)])
    dns.set("h1.example.test", [("A", H1_ADDRESS, 60)])
    dns.set("grpc.example.test", [("A", GRPC_ADDRESS, 60)])
    for u in upstreams:
        u.reset()
    token, secret = static_token(tmp_path)
    g = Gateway(str(tmp_path), dns, policies={"h2": POLICY}, extra_config=f"""tls:
  upstream_ca_file: {pki.ca_cert}
credentials:
{GITHUB_CREDENTIAL.format(secret=secret)}""")
    try:
        g.token = token
        g.ca = os.path.join(str(tmp_path), "state", "ca.crt")
        assert poll(lambda: os.path.exists(g.ca) and os.path.getsize(g.ca) > 0)
        g.sess = g.session(policy="h2")
    except BaseException:
        g.stop()
        raise
    yield g
    g.stop()
    for path in (g.audit, g.log.name):
        assert token not in open(path, errors="replace").read(), path


def curl2(g, url, *args, timeout=30):
    """curl --http2 through the proxy: (status, http version, body, stderr)."""
    mark = "\n@@%{http_code} %{http_version}@@"
    out = subprocess.run(["curl", "-sS", "--http2", "--max-time", str(timeout), "--proxy", PROXY,
                          "--cacert", g.ca, "-o", "-", "-w", mark, url, *args],
                         capture_output=True, env=CLEAN_ENV, timeout=timeout + 10)
    body, _, tail = out.stdout.rpartition(b"\n@@")
    code, _, version = tail.rstrip(b"@").decode().partition(" ")
    return int(code or 0), version, body, out.stderr.decode(errors="replace")


class RawH2:
    """A raw HTTP/2 client through the proxy's CONNECT, for what real clients never send."""

    def __init__(self, g, host="api.example.test"):
        raw = socket.create_connection(("127.0.0.1", 3128), timeout=10)
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(1)
            assert chunk, "the proxy closed the CONNECT"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        ctx = ssl.create_default_context(cafile=g.ca)
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        assert self.sock.selected_alpn_protocol() == "h2"
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(config)
        self.h2.initiate_connection()
        self.flush()
        self.responses = {}  # stream -> {"headers", "body", "trailers", "ended", "reset"}
        self.goaway = None

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, path, authority="api.example.test", method="GET", extra=()):
        sid = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":authority", authority)]
        if method != "CONNECT":
            headers += [(":scheme", "https"), (":path", path)]
        self.h2.send_headers(sid, headers + list(extra), end_stream=True)
        self.responses[sid] = {"headers": None, "body": bytearray(), "trailers": None,
                               "ended": False, "reset": None}
        self.flush()
        return sid

    def pump(self, until, timeout=10):
        """Reads events until until() or the connection ends; False on the deadline."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                continue
            if not data:
                return until()
            for ev in self.h2.receive_data(data):
                self.on_event(ev)
            self.flush()
        return True

    def on_event(self, ev):
        r = self.responses.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            r["headers"] = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            r["body"] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            r["trailers"] = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            r["ended"] = True
        elif isinstance(ev, h2.events.StreamReset) and r is not None:
            r["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev

    def done(self, sid):
        r = self.responses[sid]
        return r["ended"] or r["reset"] is not None

    def close(self):
        self.sock.close()


def test_curl_speaks_h2_through_inspection(gw, upstreams):
    status, version, body, err = curl2(gw, "https://api.example.test/repos/acme/widgets")
    assert (status, version) == (200, "2"), err
    assert body == b"h2 hello GET /repos/acme/widgets"
    got = upstreams[0].requests
    assert [(r.method, r.path, r.authority) for r in got] == [
        ("GET", "/repos/acme/widgets", "api.example.test")]
    rec = wait_events(gw, "http.request", 1)[0]
    assert (rec["proto"], rec["status"], rec["rule"], rec["decision"]) == \
        ("h2", 200, "acme-api", "allow"), rec
    assert rec["path"] == "/repos/acme/widgets" and rec["bytes_down"] > 0, rec


def test_allowed_and_denied_streams_share_one_connection(gw, upstreams):
    with httpx.Client(http2=True, proxies=PROXY, verify=gw.ca, timeout=20) as c:
        ok = c.get("https://api.example.test/repos/acme/one")
        denied = c.get("https://api.example.test/admin/keys")
        post_denied = c.delete("https://api.example.test/repos/acme/one")
        again = c.get("https://api.example.test/repos/acme/two")
    assert [r.http_version for r in (ok, denied, post_denied, again)] == ["HTTP/2"] * 4
    assert (ok.status_code, again.status_code) == (200, 200)
    assert denied.status_code == 403
    assert denied.headers["x-airlock-reason"] == "path_not_allowed"
    body = denied.json()
    assert body["reason"] == "path_not_allowed" and body["rule"] == "acme-api", body
    assert post_denied.status_code == 403
    assert post_denied.headers["x-airlock-reason"] == "method_not_allowed"
    h2u = upstreams[0]
    assert [r.path for r in h2u.requests] == ["/repos/acme/one", "/repos/acme/two"]
    assert h2u.connections == 1, "the streams did not share one upstream connection"
    recs = wait_events(gw, "http.request", 4)
    assert sorted((r["path"], r["status"], r["decision"]) for r in recs) == sorted([
        ("/repos/acme/one", 200, "allow"), ("/admin/keys", 403, "deny"),
        ("/repos/acme/one", 403, "deny"), ("/repos/acme/two", 200, "allow")]), recs
    assert len(wait_events(gw, "connection.open", 1)) == 1
    assert metric("airlock_h2_connections_total") == 1
    assert metric("airlock_h2_streams_total") == 4


def test_a_malformed_stream_is_refused_and_recorded(gw, upstreams):
    """nghttp2 resets a stream whose header block breaks HTTP/2's rules before the relay sees
    it: the stream gets RST_STREAM(PROTOCOL_ERROR), nothing goes upstream, the connection lives
    on, and the audit log still has the request."""
    c = RawH2(gw)
    c.h2.config.normalize_outbound_headers = False  # (python-h2 would drop the field)
    try:
        bad = c.request("/repos/acme/bad?token=abc", extra=[("connection", "keep-alive")])
        assert c.pump(lambda: c.done(bad)), "no answer to the malformed stream"
        assert c.responses[bad]["reset"] == 1, c.responses[bad]  # PROTOCOL_ERROR
        good = c.request("/repos/acme/good")
        assert c.pump(lambda: c.done(good))
        assert c.responses[good]["headers"][":status"] == "200"
    finally:
        c.close()
    assert [r.path for r in upstreams[0].requests] == ["/repos/acme/good"]
    recs = wait_events(gw, "http.request", 2)
    refused = [r for r in recs if r["reason"] == "h2_malformed_request"]
    assert len(refused) == 1, recs
    r = refused[0]
    assert (r["method"], r["path"], r["status"], r["decision"], r["proto"]) == \
        ("GET", "/repos/acme/bad?token=_", 0, "deny", "h2"), r


def test_authority_for_another_host_is_refused_on_its_stream(gw, upstreams):
    c = RawH2(gw)
    try:
        fronted = c.request("/anything", authority="other.example.test")
        connect = c.request(None, authority="other.example.test:443", method="CONNECT")
        ok = c.request("/repos/acme/x")
        trailers = c.request("/trailers")
        assert c.pump(lambda: all(c.done(s) for s in (fronted, connect, ok, trailers)))
        r = c.responses
        assert r[fronted]["headers"][":status"] == "421"
        assert r[fronted]["headers"]["x-airlock-reason"] == "host_sni_mismatch"
        assert json.loads(r[fronted]["body"])["reason"] == "host_sni_mismatch"
        assert r[connect]["headers"][":status"] == "405"
        assert r[connect]["headers"]["x-airlock-reason"] == "connect_in_h2"
        assert r[ok]["headers"][":status"] == "200" and r[ok]["body"] == b"h2 hello GET /repos/acme/x"
        # Trailers (how gRPC sends its status) arrive after the body.
        assert r[trailers]["body"] == b"ok"
        assert r[trailers]["trailers"] == {"grpc-status": "0", "grpc-message": "fine"}
        assert c.goaway is None, "a refused stream ended the connection"
    finally:
        c.close()
    assert [(u.path, u.authority) for u in upstreams[0].requests] == [
        ("/repos/acme/x", "api.example.test"), ("/trailers", "api.example.test")]
    recs = wait_events(gw, "http.request", 4)
    assert {r["reason"] for r in recs if r["decision"] == "deny"} == \
        {"host_sni_mismatch", "connect_in_h2"}, recs


def test_credentials_are_written_and_leaks_blocked_per_stream(gw, upstreams):
    ph = gw.sess["placeholders"]["GITHUB_TOKEN"]
    status, version, _, err = curl2(gw, "https://api.example.test/repos/acme/x", "-H",
                                    f"Authorization: Bearer {ph}")
    assert (status, version) == (200, "2"), err
    got = upstreams[0].requests
    assert len(got) == 1 and got[0].header("authorization") == f"Bearer {gw.token}", \
        "the upstream did not receive the real token"
    rec = wait_events(gw, "http.request", 1)[0]
    assert rec["credentials"] == ["github:Authorization"], rec
    # Without any credential from the client, the header is added (in lower case, as h2 wants).
    status, version, _, err = curl2(gw, "https://api.example.test/repos/acme/y")
    assert (status, version) == (200, "2"), err
    assert upstreams[0].requests[-1].header("authorization") == f"Bearer {gw.token}"
    upstreams[0].reset()
    # The same placeholder to a host whose rule does not bind it: refused on its stream.
    status, version, body, err = curl2(gw, "https://open.example.test/x", "-H",
                                       f"Authorization: Bearer {ph}")
    assert (status, version) == (403, "2"), err
    assert json.loads(body)["reason"] == "credential_leak_blocked"
    assert upstreams[0].requests == [], "the placeholder reached the upstream"
    leak = wait_events(gw, "credential.leak_blocked", 1)[0]
    assert leak["where"] == "header:authorization" or leak["where"] == "header:Authorization", leak
    # In a streamed body too.
    status, _, body, err = curl2(gw, "https://open.example.test/upload", "--data-binary",
                                 f"token={ph}")
    assert status == 403 and json.loads(body)["reason"] == "credential_leak_blocked", err
    assert all(r.path != "/upload" or r.body_len == 0 for r in upstreams[0].requests)
    audit = open(gw.audit).read()
    assert ph not in audit, "a placeholder reached the audit log"


def test_an_http11_upstream_behind_an_h2_client_gets_http11(gw, upstreams):
    status, version, body, err = curl2(gw, "https://h1.example.test/page")
    assert (status, version) == (200, "1.1"), err
    assert body == b"hello GET /page"
    rec = wait_events(gw, "http.request", 1)[0]
    assert "proto" not in rec and rec["status"] == 200, rec


def test_large_bodies_pass_with_flow_control(gw, upstreams, tmp_path):
    status, version, body, err = curl2(gw, f"https://api.example.test/download?bytes={LARGE}",
                                       timeout=120)
    assert (status, version) == (200, "2"), err
    want = hashlib.sha256()
    for block in pattern_blocks(LARGE):
        want.update(block)
    assert len(body) == LARGE and hashlib.sha256(body).hexdigest() == want.hexdigest()
    up = tmp_path / "upload.bin"
    with open(up, "wb") as f:
        for block in pattern_blocks(LARGE // 4):
            f.write(block)
    status, version, body, err = curl2(gw, "https://api.example.test/upload", "--data-binary",
                                       f"@{up}", timeout=120)
    assert (status, version) == (200, "2"), err
    got = json.loads(body)
    assert got == {"bytes": LARGE // 4,
                   "sha256": hashlib.sha256(up.read_bytes()).hexdigest()}, got


def test_an_upstream_reset_is_a_502_on_that_stream(gw, upstreams):
    status, version, body, err = curl2(gw, "https://api.example.test/reset")
    assert (status, version) == (502, "2"), err
    assert json.loads(body)["reason"] == "upstream_stream_reset"


def metric(name):
    text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"no metric {name}")


def _closed_with(gw, reason):
    recs = wait_events(gw, "connection.close", 1, reason=reason)
    return len(recs) == 1


def test_rapid_reset_is_ended_with_goaway(gw, upstreams):
    c = RawH2(gw)
    try:
        for _ in range(400):
            sid = c.request("/repos/acme/x")
            c.h2.reset_stream(sid)
        c.flush()
        assert c.pump(lambda: c.goaway is not None, timeout=20), "no GOAWAY"
        assert c.goaway.error_code == 0xb  # ENHANCE_YOUR_CALM
    except OSError:
        pass  # the gateway closed first: the audit log says why
    finally:
        c.close()
    assert _closed_with(gw, "h2_rapid_reset")
    assert metric("airlock_h2_goaways_total") == 1
    assert metric("airlock_h2_stream_resets_total") >= 100  # most before their answer came
    # The gateway serves the next connection.
    status, _, _, err = curl2(gw, "https://api.example.test/repos/acme/after")
    assert status == 200, err


def test_an_oversize_header_list_is_ended_with_goaway(gw, upstreams):
    c = RawH2(gw)
    try:
        c.request("/repos/acme/x", extra=[(f"x-big-{i}", "v" * 4000) for i in range(20)])
        assert c.pump(lambda: c.goaway is not None, timeout=10), "no GOAWAY"
    finally:
        c.close()
    assert _closed_with(gw, "h2_header_list_too_large")
    assert upstreams[0].requests == []


def test_a_continuation_flood_is_ended(gw, upstreams):
    c = RawH2(gw)
    try:
        block = c.h2.encoder.encode([(":method", "GET"), (":scheme", "https"),
                                     (":authority", "api.example.test"), (":path", "/x")] +
                                    [(f"x-h{i}", "v") for i in range(40)])
        sid = 1
        # HEADERS without END_HEADERS, then a CONTINUATION per byte.
        frames = [(0x1, 0x1, block[:1])] + [(0x9, 0x0, block[i:i + 1])
                                            for i in range(1, len(block) - 1)]
        frames.append((0x9, 0x4, block[-1:]))
        wire = b"".join(len(p).to_bytes(3, "big") + bytes([t, f]) + sid.to_bytes(4, "big") + p
                        for t, f, p in frames)
        try:
            c.sock.sendall(wire)
            c.pump(lambda: c.goaway is not None, timeout=10)
        except (OSError, h2.exceptions.ProtocolError):
            pass  # closed by the gateway
    finally:
        c.close()
    assert _closed_with(gw, "h2_continuation_flood")
    assert upstreams[0].requests == []


def test_grpc_calls_through_inspection(gw, grpc_upstream):
    grpc_upstream.calls.clear()
    with open(gw.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel("grpc.example.test:443", creds,
                                  options=[("grpc.http_proxy", PROXY),
                                           ("grpc.enable_http_proxy", 1)])
    with channel:
        say = channel.unary_unary("/airlock.test.Echo/Say")
        reply, call = say.with_call(b"hi", timeout=20)
        assert reply == b"said: hi"
        assert ("x-echo-trailer", "kept") in call.trailing_metadata()
        count = channel.unary_stream("/airlock.test.Echo/Count")
        assert [m for m in count(b"5", timeout=20)] == [b"0", b"1", b"2", b"3", b"4"]
        secret = channel.unary_unary("/airlock.test.Echo/Secret")
        with pytest.raises(grpc.RpcError) as denied:
            secret(b"x", timeout=20)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "path_not_allowed" in denied.value.details(), denied.value.details()
    assert "/airlock.test.Echo/Secret" not in grpc_upstream.calls
    assert grpc_upstream.calls == ["/airlock.test.Echo/Say", "/airlock.test.Echo/Count"]
    recs = wait_events(gw, "http.request", 3)
    assert sorted((r["path"], r["status"], r["decision"], r["proto"]) for r in recs) == [
        ("/airlock.test.Echo/Count", 200, "allow", "h2"),
        ("/airlock.test.Echo/Say", 200, "allow", "h2"),
        ("/airlock.test.Echo/Secret", 403, "deny", "h2")], recs


def test_a_ping_flood_is_ended(gw, upstreams):
    """PINGs as fast as the client can send them, acknowledgements never read."""
    c = RawH2(gw)
    ping = (8).to_bytes(3, "big") + bytes([0x6, 0x0]) + (0).to_bytes(4, "big") + b"airlock!"
    try:
        for _ in range(100):  # at most 100 x 16 Ki pings; the gateway ends it far sooner
            c.sock.sendall(ping * 16384)
    except OSError:
        pass  # closed by the gateway
    finally:
        c.close()
    assert _closed_with(gw, "h2_flood")
    assert metric("airlock_h2_goaways_total") == 1


def test_a_slow_reader_holds_its_upstream_not_the_gateways_memory(gw, upstreams):
    """A client that stops reading a large download: the upstream is held by flow control after
    a few windows and socket buffers, and the gateway's memory does not grow with it."""
    curl2(gw, "https://api.example.test/repos/acme/warm-up")
    before = rss_bytes(gw.proc.pid)
    size = (96 << 20) if ASAN else (256 << 20)
    c = RawH2(gw)
    try:
        sid = c.request(f"/download?bytes={size}")
        h2u = upstreams[0]
        held = wait_stalled(lambda: h2u.sent)
        assert held is not None, "the upstream never stalled"
        assert held < 48 << 20, f"{held >> 20} MiB left the upstream for a reader that reads nothing"
        grown = rss_bytes(gw.proc.pid) - before
        if not ASAN:  # ASan's allocator and quarantine keep more by design
            assert grown < 32 << 20, f"the gateway grew by {grown >> 20} MiB for a stalled stream"
        # Reading resumes the stream, to the last byte.
        assert c.pump(lambda: c.done(sid), timeout=180)
        assert len(c.responses[sid]["body"]) == size
    finally:
        c.close()


def test_floods_leave_no_memory_behind(gw, upstreams):
    curl2(gw, "https://api.example.test/repos/acme/warm-up")
    before = rss_bytes(gw.proc.pid)
    for i in range(10):
        c = RawH2(gw)
        try:
            for _ in range(300):
                sid = c.request("/repos/acme/x")
                c.h2.reset_stream(sid)
            c.flush()
            c.pump(lambda: c.goaway is not None, timeout=20)
        except OSError:
            pass
        finally:
            c.close()
    assert len(wait_events(gw, "connection.close", 10, reason="h2_rapid_reset")) == 10
    grown = rss_bytes(gw.proc.pid) - before
    if not ASAN:  # ASan's quarantine keeps freed memory by design
        assert grown < 16 << 20, f"the gateway grew by {grown >> 20} MiB over 10 floods"


def test_early_answers_do_not_shrink_the_connection_window(gw, upstreams, tmp_path):
    """Uploads the upstream answers early and resets: the bytes the gateway had queued for them
    must reopen the sandbox's connection window, or later uploads on the connection stall."""
    up = tmp_path / "upload.bin"
    with open(up, "wb") as f:
        for block in pattern_blocks(4 << 20):
            f.write(block)
    each = ["--http2", "--proxy", PROXY, "--cacert", gw.ca,
            "-w", "\n%{http_code} %{num_connects}\n"]
    args = each + ["https://api.example.test/repos/acme/first"]
    for _ in range(4):  # (--next: options apply per URL, the connection is kept)
        args += ["--next", *each, "--data-binary", f"@{up}", "https://api.example.test/early"]
    args += ["--next", *each, "--data-binary", f"@{up}", "https://api.example.test/upload"]
    out = subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                         env=CLEAN_ENV, timeout=150)
    lines = out.stdout.decode(errors="replace").split("\n")
    codes = [line for line in lines if line.startswith(("200 ", "000 "))]
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    # With the window shrinking for good, the transfers after the early answers stall until
    # curl's --max-time (000). curl normally keeps one connection; under load it has once
    # opened a second one for the last upload, which weakens the test but is no failure.
    assert [c.split()[0] for c in codes] == ["200"] * 6, codes
    got = json.loads([line for line in lines if line.startswith("{")][-1])
    assert got["bytes"] == 4 << 20, got


def test_many_streams_on_one_connection(gw, upstreams):
    """More response bytes in all than the connection's window (1 MiB), a stream at a time: every
    stream's bytes must reopen the upstream's connection window, or the connection stalls."""
    out = subprocess.run(["curl", "-sS", "--http2", "--max-time", "60", "--proxy", PROXY,
                          "--cacert", gw.ca, "-o", "/dev/null",
                          "-w", "%{http_code} %{size_download} %{num_connects}\n",
                          "https://api.example.test/blob?bytes=8192&n=[1-300]"],
                         capture_output=True, env=CLEAN_ENV, timeout=120)
    lines = out.stdout.decode().split()
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    results = [tuple(lines[i:i + 3]) for i in range(0, len(lines), 3)]
    bad = [i for i, r in enumerate(results) if r[:2] != ("200", "8192")]
    assert len(results) == 300 and not bad, \
        (len(results), bad[:3], out.stderr.decode(errors="replace")[-300:])
    assert sum(int(r[2]) for r in results) == 1, "the connection was not reused"


def test_a_stream_in_flight_when_a_reload_ends_the_connection_has_its_record(gw, upstreams):
    c = RawH2(gw)
    try:
        sid = c.request("/download?bytes=67108864")  # never read: still in flight
        assert poll(lambda: upstreams[0].sent > 0, timeout=10), "the download never started"
        gw.write_policy("h2", POLICY.replace("hosts: [api.example.test]",
                                             "hosts: [elsewhere.example.test]"))
        status, body = gw.api("POST", "/v1/reload")
        assert status == 200, body
        assert _closed_with(gw, "policy_reload")
    finally:
        c.close()
    recs = wait_events(gw, "http.request", 1, path="/download?bytes=_")
    assert len(recs) == 1 and recs[0]["status"] == 200 and recs[0]["proto"] == "h2", recs
    assert sid == 1


def test_a_credential_echoed_in_a_1xx_is_replaced(gw, upstreams, tmp_path):
    """103 Early Hints echoing the injected token: replaced like a final answer's headers."""
    ph = gw.sess["placeholders"]["GITHUB_TOKEN"]
    heads = tmp_path / "heads"
    status, version, body, err = curl2(gw, "https://api.example.test/hints", "-D", str(heads),
                                       "-H", f"Authorization: Bearer {ph}")
    assert (status, version, body) == (200, "2", b"hinted"), err
    assert upstreams[0].requests[-1].header("authorization") == f"Bearer {gw.token}"
    text = heads.read_text()
    assert "103" in text, "curl saw no 103"
    assert gw.token not in text, "the real token reached the sandbox in a 1xx"
    assert wait_events(gw, "credential.reflection_blocked", 1, where="header:link")


def test_an_upstream_that_leaves_after_answering_is_drained_to_the_sandbox(gw, upstreams):
    """The upstream answers (more than the sandbox's window), sends GOAWAY and closes: the
    sandbox still gets the whole answer before its connection ends."""
    c = RawH2(gw)
    try:
        sid = c.request("/bye?bytes=200000")
        assert c.pump(lambda: c.done(sid), timeout=20), "the answer never ended"
        r = c.responses[sid]
        assert r["reset"] is None and len(r["body"]) == 200000, (r["reset"], bytes(r["body"][:300]))
    finally:
        c.close()
    assert _closed_with(gw, "upstream_closed")
