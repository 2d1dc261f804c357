"""A hostile or broken upstream, through the real gateway: response framing checked as strictly
as requests (502 with a reason, nothing ambiguous passed on), an upstream that answers before the
request body was sent (the rest of the body never read as a next request), and HTTP/1.0 clients
answered without chunks (a body of unknown length ends when the connection does)."""
import socket
import time

import pytest

from conftest import listen, raw_request, recv_all, serve
from tls_upstreams import read_request_head

ADDRESS, PORT = "127.0.0.5", 8080  # inside the test policy's private upstream range
HOST = "bad.evil.test"


class ScriptedUpstream:
    """Reads each request's head, records it, and answers with the bytes `respond(head)` gives;
    with `close`, closes after answering, else reads on (without reading bodies)."""

    def __init__(self):
        self.respond = lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        self.close = True
        self.heads = []
        self.sock = listen(ADDRESS, PORT)
        serve(self.sock, self._serve)

    def _serve(self, c):
        rfile = c.makefile("rb")
        try:
            while (head := read_request_head(rfile)) is not None:
                self.heads.append(head)
                c.sendall(self.respond(head))
                if self.close:
                    return
        except (OSError, ValueError):  # the gateway went away, or sent what is not a head
            return
        finally:
            rfile.close()
            c.close()


@pytest.fixture(scope="module")
def scripted():
    u = ScriptedUpstream()
    yield u
    # Gone for good: other modules use this address as one that refuses connections.
    u.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which lets go of it
    u.sock.close()
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection((ADDRESS, PORT), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.time() < deadline, "the scripted upstream still listens"
        time.sleep(0.05)


@pytest.fixture
def bad(gateway, dns, scripted):
    dns.set(HOST, [("A", ADDRESS, 60)])
    scripted.heads.clear()
    scripted.close = True
    gateway.session()
    return scripted


def read_to_close(s):
    """What the gateway sends until it closes; a reset (it closed with our bytes unread) ends it
    too."""
    try:
        return recv_all(s)
    except ConnectionResetError:
        return b""


def exchange(data):
    try:
        return raw_request(data)
    except ConnectionResetError:  # closed with our bytes unread: nothing more came
        return b""


GET = f"GET http://{HOST}:{PORT}/x HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n\r\n".encode()

BAD_HEADS = [
    ("dup_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nzzzz"),
    ("cl_te", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te_gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("cl_list", b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nzzz"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 3\n\nzzz"),
    ("nul", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 3\r\n\r\nzzz"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 3\r\n\r\nzzz"),
    ("oversize", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 500)
                                                  for i in range(80)) + b"\r\n"),
    ("http2", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
]


@pytest.mark.parametrize("name,answer", BAD_HEADS, ids=[b[0] for b in BAD_HEADS])
def test_a_malformed_response_head_is_a_502_with_its_reason(gateway, bad, name, answer):
    bad.respond = lambda head: answer
    resp = exchange(GET)
    assert resp.startswith(b"HTTP/1.1 502 "), resp[:200]
    assert b"X-Airlock-Reason: bad_upstream_response\r\n" in resp
    assert b"zzz" not in resp.split(b"\r\n\r\n", 1)[1], "the ambiguous body reached the client"
    recs = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    assert [r["reason"] for r in recs if r["event"] == "connection.close"] == \
        ["bad_upstream_response"], recs


@pytest.mark.parametrize("chunks", [b"5x\r\nhello\r\n", b"ffffffffffffffffff1\r\nx\r\n",
                                    b"3\r\nhelloX\r\n0\r\n\r\n", b"5\nhello\n0\n\n"],
                         ids=["junk", "overflow", "too_long", "lf_only"])
def test_a_malformed_chunk_cuts_the_response(gateway, bad, chunks):
    bad.respond = lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    resp = exchange(GET)  # the head, or nothing if the connection was reset before it went
    assert resp == b"" or resp.startswith(b"HTTP/1.1 200 "), resp[:200]
    assert not resp.endswith(b"0\r\n\r\n"), "the client was told the body was complete"
    recs = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    assert [r["reason"] for r in recs if r["event"] == "connection.close"] == \
        ["bad_upstream_body"], recs


def test_an_http10_client_gets_a_close_delimited_body(gateway, bad):
    bad.respond = lambda head: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    resp = exchange(f"GET http://{HOST}:{PORT}/x HTTP/1.0\r\nHost: {HOST}:{PORT}\r\n\r\n".encode())
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), resp[:200]
    assert b"transfer-encoding" not in head.lower(), head
    assert b"content-length" not in head.lower(), head
    assert b"\r\nConnection: close" in head
    assert body == b"hello world"  # raw, and ended by the close (recv_all returned)


def test_an_http11_client_gets_a_close_delimited_body_chunked(gateway, bad):
    bad.respond = lambda head: b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    resp = exchange(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head, head
    assert body == b"d\r\nuntil the end\r\n0\r\n\r\n"  # the last chunk too


def test_an_early_answer_never_turns_the_rest_of_the_body_into_a_request(gateway, bad, upstream):
    """The upstream refuses a POST from its head alone (a 401, say). The client only then sends
    its body, which looks like a second request: it must never be read as one."""
    bad.respond = lambda head: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope"
    bad.close = False  # and keeps reading, as servers that answer early do
    smuggled = (b"GET http://web.test:8080/smuggled HTTP/1.1\r\nHost: web.test:8080\r\n\r\n")
    body = smuggled + b"x" * (4096 - len(smuggled))
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(f"POST http://{HOST}:{PORT}/upload HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode())
    answer = b""
    while b"nope" not in answer:  # the whole early answer (the socket's timeout bounds this)
        d = s.recv(65536)
        assert d, answer
        answer += d
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nConnection: close\r\n" in answer, "the client would send its next request here"
    try:
        s.sendall(body)
    except OSError:
        pass  # closed already: as good
    rest = read_to_close(s)
    s.close()
    assert b"HTTP/1.1" not in rest, "a second response: the body was read as a request"
    recs = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
    requests = [r for r in recs if r["event"] == "http.request"]
    assert [r["path"] for r in requests] == ["/upload"], requests
    assert not any(b"smuggled" in r["head"] for r in upstream.requests)
