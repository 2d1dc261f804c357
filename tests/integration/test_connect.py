"""CONNECT: decided before the tunnel opens; for TLS rules the ClientHello's SNI must equal the
CONNECT host, checked before anything is dialled; tcp rules tunnel raw bytes."""
import json
import socket
import subprocess
import threading

from conftest import listen, recv_all, curl, raw_request
from test_inspect import ASAN, rss_bytes, wait_stalled


def test_https_through_connect_with_matching_sni(gateway, tls_upstream):
    gateway.session()
    n = len(tls_upstream.snis)
    status, body = curl("--cacert", tls_upstream.cert, "https://tls.test:8443/")
    assert status == 200 and body == b"tls hello"
    assert tls_upstream.snis[n:] == ["tls.test"]
    rec = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    opened = [r for r in rec if r["event"] == "connection.open"][0]
    assert opened["decision"] == "allow" and opened["proto"] == "tls" and opened["rule"] == "tls"
    closed = [r for r in rec if r["event"] == "connection.close"][0]
    assert closed["bytes_up"] > 0 and closed["bytes_down"] > 0


def openssl_via_proxy(servername):
    args = ["openssl", "s_client", "-connect", "tls.test:8443", "-proxy", "127.0.0.1:3128",
            "-brief"]
    args += ["-servername", servername] if servername else ["-noservername"]
    return subprocess.run(args, input=b"", capture_output=True, timeout=15)


def test_sni_mismatch_is_refused_before_dialling(gateway, tls_upstream):
    gateway.session()
    n = len(tls_upstream.snis)
    out = openssl_via_proxy("other.test")
    assert out.returncode != 0
    assert tls_upstream.snis[n:] == [], "the upstream saw a handshake"
    rec = gateway.records(lambda r: any(x.get("reason") == "sni_mismatch" for x in r))
    assert any(r["event"] == "connection.open" and r["decision"] == "deny" and
               r["reason"] == "sni_mismatch" for r in rec)


def test_missing_sni_is_refused(gateway, tls_upstream):
    gateway.session()
    n = len(tls_upstream.snis)
    out = openssl_via_proxy(None)
    assert out.returncode != 0
    assert tls_upstream.snis[n:] == []
    rec = gateway.records(lambda r: any(x.get("reason") == "sni_missing" for x in r))
    assert any(r.get("reason") == "sni_missing" for r in rec)


def test_plaintext_in_a_tls_tunnel_is_refused(gateway):
    gateway.session()
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"CONNECT tls.test:8443 HTTP/1.1\r\nHost: tls.test:8443\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
    assert s.recv(4096) == b""  # closed without reaching the upstream
    s.close()
    rec = gateway.records(lambda r: any(x.get("reason") == "not_tls" for x in r))
    assert any(r.get("reason") == "not_tls" for r in rec)


def test_connect_to_a_denied_host(gateway):
    gateway.session()
    resp = raw_request(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 403 ")
    body = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert body["reason"] == "host_not_allowed" and body["port"] == 443


def test_tcp_rule_tunnels_raw_bytes_with_half_close(gateway):
    """A tcp rule: opaque bytes both ways; the client's EOF reaches the upstream, whose reply
    still comes back (half-close)."""
    gateway.session()
    srv = listen("127.0.0.4", 9000)
    c = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
    assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
    up, _ = srv.accept()
    up.settimeout(5)
    c.sendall(b"SSH-2.0-test\r\n" + b"x" * 200000)
    c.shutdown(socket.SHUT_WR)
    got = recv_all(up)  # ends when the client's half-close arrives
    assert got == b"SSH-2.0-test\r\n" + b"x" * 200000
    up.sendall(b"reply after eof")
    up.close()
    assert recv_all(c) == b"reply after eof"
    c.close()
    srv.close()
    rec = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    closed = [r for r in rec if r["event"] == "connection.close"][0]
    assert closed["bytes_up"] == 200014 and closed["bytes_down"] == 15
    # Between two plain sockets the bytes went through pipes (splice), not the gateway's memory.
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
    spliced = [line for line in text.splitlines() if line.startswith("airlock_spliced_bytes_total ")]
    assert spliced and int(spliced[0].split()[1]) >= 200014 + 15


def test_a_slow_reader_holds_the_tunnel_not_the_gateways_memory(gateway):
    """A raw TCP tunnel whose client reads nothing: the upstream is held once the pipe and the
    socket buffers are full, the gateway's memory does not grow with what it is sent, and every
    byte sent arrives once the client reads."""
    gateway.session()
    srv = listen("127.0.0.4", 9000)
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
    assert c.recv(4096) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    up, _ = srv.accept()
    before = rss_bytes(gateway.proc.pid)
    sent = [0]

    def pump():
        chunk = b"y" * 65536
        try:
            while True:
                sent[0] += up.send(chunk)
        except OSError:
            pass  # shut down below

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    held = wait_stalled(lambda: sent[0])
    assert held is not None, "the upstream never stalled"
    assert held < 64 << 20, f"{held >> 20} MiB left the upstream for a reader that reads nothing"
    grown = rss_bytes(gateway.proc.pid) - before
    if not ASAN:
        assert grown < 8 << 20, f"the gateway grew by {grown >> 20} MiB for a stalled tunnel"
    up.shutdown(socket.SHUT_RDWR)  # ends the pump; what it sent still arrives, then EOF
    t.join(timeout=10)
    got = 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        got += len(d)
    assert got == sent[0]
    c.close()
    up.close()
    srv.close()
