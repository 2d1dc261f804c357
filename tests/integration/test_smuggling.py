"""Request smuggling through the real gateway: each message is refused with 400 (or the status
its class calls for) and the connection closed, and the upstream receives nothing. A smuggled
second request would show up at the upstream."""
import pytest

from conftest import raw_request

H = "GET http://web.test:8080/ HTTP/1.1\r\nHost: web.test:8080\r\n"
P = "POST http://web.test:8080/ HTTP/1.1\r\nHost: web.test:8080\r\n"
SMUGGLED = "GET http://web.test:8080/smuggled HTTP/1.1\r\nHost: web.test:8080\r\n\r\n"

CORPUS = [
    ("cl_te", P + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_cl", P + "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("dup_cl", P + "Content-Length: 0\r\nContent-Length: 60\r\n\r\n" + SMUGGLED),
    ("cl_list", P + "Content-Length: 0, 60\r\n\r\n" + SMUGGLED),
    ("cl_plus", P + "Content-Length: +0\r\n\r\n" + SMUGGLED),
    ("cl_negative", P + "Content-Length: -1\r\n\r\n" + SMUGGLED),
    ("te_xchunked", P + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_gzip_chunked", P + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_twice", P + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_http10", P.replace("HTTP/1.1", "HTTP/1.0") + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_space_colon", P + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te_obs_fold", P + "X: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("bare_lf", H.replace("\r\n", "\n") + "\n" + SMUGGLED),
    ("bare_cr", H + "X: a\rTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED),
    ("nul_header", H + "X: a\x00b\r\n\r\n" + SMUGGLED),
    ("empty_name", H + ": x\r\n\r\n" + SMUGGLED),
    ("chunk_size_junk", P + "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    ("chunk_size_overflow", P + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n" + SMUGGLED),
    ("chunk_lf_only", P + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + SMUGGLED),
    ("chunk_too_long", P + "Transfer-Encoding: chunked\r\n\r\n3\r\nhelloX\r\n0\r\n\r\n" + SMUGGLED),
    ("dup_host", H + "Host: evil.example\r\n\r\n" + SMUGGLED),
    ("h2c", H + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + SMUGGLED),
    ("h2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SMUGGLED),
    ("connect_with_body", "CONNECT web.test:8080 HTTP/1.1\r\nHost: web.test:8080\r\n"
     f"Content-Length: {len(SMUGGLED)}\r\n\r\n" + SMUGGLED),
    ("http2_version", "GET http://web.test:8080/ HTTP/2.0\r\nHost: web.test:8080\r\n\r\n" + SMUGGLED),
    ("space_in_target", "GET http://web.test:8080/a b HTTP/1.1\r\nHost: web.test:8080\r\n\r\n" + SMUGGLED),
    ("leading_crlf", "\r\n" + H + "\r\n" + SMUGGLED),
    ("huge_line", "GET http://web.test:8080/" + "a" * 9000 + " HTTP/1.1\r\nHost: web.test:8080\r\n\r\n"),
    ("too_many_headers", H + "".join(f"X-{i}: v\r\n" for i in range(120)) + "\r\n"),
]


def test_corpus_size():
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("name,message", CORPUS, ids=[c[0] for c in CORPUS])
def test_smuggling_is_refused_and_nothing_reaches_upstream(gateway, upstream, name, message):
    gateway.session()
    before = len(upstream.requests)
    conns = upstream.connections
    raw_before = len(upstream.raw)
    resp = raw_request(message.encode("latin-1"))
    status = int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else 0
    assert status in (400, 414, 431, 501, 505), resp[:300]
    assert b"\nHTTP/1.1 " not in resp, "a second response: a smuggled request got through"
    assert b"Connection: close" in resp
    assert len(upstream.requests) == before, upstream.requests[before:]
    assert b"smuggled" not in b"".join(upstream.raw[raw_before:])
    if name.startswith("chunk_"):
        # A body error shows only after the head went upstream: the upstream got a truncated
        # request (never the bad chunk, never the last chunk), and the connection was closed.
        pass
    else:
        assert upstream.connections == conns, "the gateway connected upstream"
    if name.startswith("chunk_"):
        rec = gateway.records(lambda r: any(x["event"] == "connection.close" for x in r))
        assert any(r["event"] == "connection.close" and r["reason"] == "malformed_body"
                   for r in rec), rec
    else:
        rec = gateway.records(lambda r: any(x["event"] == "connection.open" for x in r))
        assert any(r["event"] == "connection.open" and r["decision"] == "deny" for r in rec)
