"""CONNECT: decided before the tunnel opens; for TLS rules the ClientHello's SNI must equal the
CONNECT host, checked before anything is dialled; tcp rules tunnel raw bytes."""
import json
import os
import socket
import subprocess
import threading

from conftest import listen, recv_all, curl, raw_request
import pytest
from test_inspect import ASAN, poll, rss_bytes, wait_stalled


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


def pipe_descriptors(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass  # closed while listed
    return n


def exchange(c, up, i):
    c.sendall(b"ping %d" % i)
    assert up.recv(64) == b"ping %d" % i
    up.sendall(b"pong %d" % i)
    assert c.recv(64) == b"pong %d" % i


def test_idle_spliced_tunnels_hold_no_pipes(gateway):
    """A spliced tunnel borrows its pipes from the worker only while bytes are in them: 30 raw
    TCP tunnels that have carried bytes both ways and gone quiet hold no pipe in the gateway
    (there are at most the few the worker keeps for reuse), and they still carry bytes after."""
    gateway.session()
    srv = listen("127.0.0.4", 9000, backlog=64)
    before = pipe_descriptors(gateway.proc.pid)
    tunnels = []
    try:
        for i in range(30):
            c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
            c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
            assert c.recv(4096) == b"HTTP/1.1 200 Connection established\r\n\r\n"
            up, _ = srv.accept()
            up.settimeout(10)
            tunnels.append((c, up))
            exchange(c, up, i)
        # A pipe goes back once empty, which may be a moment after the last byte arrived.
        held = lambda: pipe_descriptors(gateway.proc.pid) - before  # noqa: E731
        assert poll(lambda: held() <= 8, timeout=10), f"30 idle tunnels hold {held()} pipe fds"
        for i, (c, up) in enumerate(tunnels):
            exchange(c, up, 100 + i)
    finally:
        for c, up in tunnels:
            c.close()
            up.close()
        srv.close()


def recv_exactly(sock, n):
    got = b""
    while len(got) < n:
        d = sock.recv(1 << 20)
        assert d, f"the tunnel ended after {len(got)} of {n} bytes"
        got += d
    return got


def spliced_bytes():
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
    return int(next(line.split()[1] for line in text.splitlines()
                    if line.startswith("airlock_spliced_bytes_total ")))


def open_raw_tunnel(srv):
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
    assert c.recv(4096) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    up, _ = srv.accept()
    up.settimeout(10)
    return c, up


@pytest.mark.skipif(ASAN, reason="at the open-file limit the sanitizer runtime's own pipe(2) "
                    "probes fail and UBSan reports false vptr errors")
def test_without_a_pipe_to_be_had_a_tunnel_copies_instead(gateway):
    """Out of descriptors, no pipe can be made: a spliced tunnel whose turn it is moves its
    bytes through user space instead (bounded the same way), losing none, and splices again
    once descriptors are free. One tunnel per worker (the test gateway runs two) stalls with a
    full pipe, its client reading nothing, so no worker keeps a pipe to lend; the open-file
    limit is then set to what is open, and tunnel B carries bytes both ways."""
    gateway.session()
    pid = gateway.proc.pid
    srv = listen("127.0.0.4", 9000)
    b_client, b_up = open_raw_tunnel(srv)
    exchange(b_client, b_up, 1)
    stalled = []  # (client, upstream, pump thread, bytes sent)
    for _ in range(2):
        client, up = open_raw_tunnel(srv)
        sent = [0]

        def pump(up=up, sent=sent):
            try:
                while True:
                    sent[0] += up.send(b"a" * 65536)
            except OSError:
                pass  # shut down below

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        assert wait_stalled(lambda: sent[0]) is not None, "a tunnel never stalled"
        stalled.append((client, up, t, sent))
    fds = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = min(set(range(len(fds) + 1)) - fds)
    soft = next(line.split()[3] for line in open(f"/proc/{pid}/limits")
                if line.startswith("Max open files"))
    spliced = spliced_bytes()  # the metrics listener, too, needs a descriptor to answer
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={lowest_free}:"], check=True)
    try:
        data = os.urandom(300000)
        b_client.sendall(data)
        assert recv_exactly(b_up, len(data)) == data
        b_up.sendall(data[:5000])
        assert recv_exactly(b_client, 5000) == data[:5000]
    finally:
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={soft}:"], check=True)
    assert spliced_bytes() - spliced < 300000, "a pipe was had at the open-file limit"
    # Descriptors free again: the stalled bytes all arrive, and B splices again.
    for client, up, t, sent in stalled:
        up.shutdown(socket.SHUT_RDWR)  # ends the pump; what it sent still arrives, then EOF
        t.join(timeout=10)
        got = 0
        while (d := client.recv(1 << 20)):
            got += len(d)
        assert got == sent[0]
        client.close()
        up.close()
    spliced = spliced_bytes()
    exchange(b_client, b_up, 2)
    assert poll(lambda: spliced_bytes() > spliced)
    for s in (b_client, b_up, srv):
        s.close()


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
