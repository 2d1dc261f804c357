#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (tests/fuzz/corpus/NAME/seed-*): well-formed and
hostile examples of what each parser reads, so fuzzing starts from the shapes that matter.
Regression inputs for fixed findings live beside them as regress-*; this script never touches
those. Run it again after changing a seed below."""
import base64
import glob
import hashlib
import hmac
import json
import os
import ssl
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for old in glob.glob(os.path.join(d, "seed-*")):
        os.unlink(old)
    for i, data in enumerate(seeds):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(data)


def step(n, no_body=False):
    return bytes([(n - 1) | (0x40 if no_body else 0)])


REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\nProxy-Authorization: Basic "
    b"eDp5\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0;ext=1\r\nTrailer: x\r\n\r\n",
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
]


def client_hellos():
    out = []
    for sni, alpn, version in [("api.github.com", ["h2", "http/1.1"], None),
                               ("a.example", None, ssl.TLSVersion.TLSv1_2),
                               (None, ["http/1.1"], None)]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if version:
            ctx.maximum_version = version
        if alpn:
            ctx.set_alpn_protocols(alpn)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            pass
        out.append(outgoing.read())
    hello = out[0]
    # The same hello split over two records.
    body = hello[5:]
    half = len(body) // 2
    split = (b"\x16\x03\x01" + struct.pack(">H", half) + body[:half] + b"\x16\x03\x01" +
             struct.pack(">H", len(body) - half) + body[half:])
    return out + [split, b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00"]


def dns_query(name, qtype, qid=0x1234, flags=0x0100, edns=False):
    q = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return q


def audit_log(key, n=4, start=1, prev=None):
    lines = []
    prev = prev or "0" * 64
    for seq in range(start, start + n):
        rec = {"seq": seq, "ts": "2026-12-02T12:00:00.000000Z", "prev": prev,
               "event": "connection.open", "session": "s1", "host": "a.example"}
        line = json.dumps(rec, separators=(",", ":"))
        lines.append(line)
        prev = (hmac.new(key.encode(), line.encode(), hashlib.sha256).hexdigest() if key
                else hashlib.sha256(line.encode()).hexdigest())
    return "".join(l + "\n" for l in lines), prev


def h2_streams():
    """What an HTTP/2 peer sends: a client's preface, settings and requests (for the server side,
    first byte even) and a server's settings and answers to streams 1 and 3 (odd)."""
    import h2.config
    import h2.connection
    seeds = []
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "a.example"),
                       (":path", "/x")], end_stream=True)
    c.send_headers(3, [(":method", "POST"), (":scheme", "https"), (":authority", "a.example"),
                       (":path", "/up"), ("content-length", "5")])
    c.send_data(3, b"hello")
    c.send_headers(3, [("x-trailer", "t")], end_stream=True)
    c.ping(b"12345678")
    c.reset_stream(1)
    seeds += [b"\x00" + c.data_to_send(), b"\x02" + c.data_to_send()]
    whole = b"\x0e" + seeds[0][1:]
    seeds.append(whole)
    s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    s.initiate_connection()
    out = s.data_to_send()
    # A server's SETTINGS, then a response with a body and trailers on stream 1, written as
    # frames by hand (the library will not answer streams it did not see).
    def frame(t, f, sid, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([t, f]) + struct.pack(">I", sid) + payload
    hpack_status = bytes([0x88])  # :status 200, indexed
    resp = (frame(0x1, 0x4, 1, hpack_status) + frame(0x0, 0x0, 1, b"ok") +
            frame(0x1, 0x5, 1, bytes([0x40, 0x0b]) + b"grpc-status" + bytes([0x01]) + b"0") +
            frame(0x1, 0x5, 3, hpack_status) + frame(0x3, 0x0, 3, struct.pack(">I", 8)))
    seeds.append(b"\x01" + out + resp)
    seeds.append(b"\x01" + frame(0x4, 0x0, 0, b"") + frame(0x7, 0x0, 0, struct.pack(">II", 0, 11)))
    return seeds


def main():
    write("http_request", [step(64) + r for r in REQUESTS] + [step(1) + REQUESTS[3],
                                                              step(7) + REQUESTS[1]])
    write("http_response", [step(64) + r for r in RESPONSES] +
          [step(3, no_body=True) + b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
           step(1) + RESPONSES[1]])
    write("client_hello", client_hellos())
    write("dns_message", [dns_query("api.github.com", 1), dns_query("api.github.com", 28, edns=True),
                          dns_query("a.example", 16), dns_query("x", 1, flags=0x8180),
                          dns_query("a.example", 1, flags=0x2800), b"\x12\x34"])
    write("host", ["api.github.com", "API.GitHub.com.", "127.1", "0x7f.0.0.1", "017700000001",
                   "[::ffff:169.254.169.254]", "::1", "xn--bcher-kva.example", "1.2.3.4.5",
                   "a..b", "10.0.0.0/8", "fd00::/8", "127.0.0.1:3128", "[::1]:53",
                   "169.254.169.254", "2130706433"])
    write("path", ["/repos/acme/widget/issues?state=open", "/a/./b/../c", "/%2e%2e/etc",
                   "/a%2Fb", "//x", "/a\\b", "/~user/%41%42", "/repos/*/x\n/repos/acme/x",
                   "/v1/**\n/v1/models/gpt", "/**/x\n/a/b/x", "*", "/a?b=../../"])
    key = "0123456789abcdef0123456789abcdef0123"
    write("placeholder_scan", [
        "Authorization: Bearer ghp_" + key,
        "/x?token=ghp_" + key.upper(),
        "/x?t=%67hp_%30%31" + key[2:],
        "/x?t=%2530%2531" + key[2:],
        "/x?state=" + "Z2hwXzAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMw==",
        "a" * 35 + "-" + "b" * 40,
        "%" + "4" * 70,
        "deadbeef" * 20,
    ])
    write("credential_text", [
        b"\x00" + json.dumps({"token": "tok-123456789", "expires_at": "2026-12-02T10:00:00Z"}).encode(),
        b"\x00" + json.dumps({"token": "tok-123456789", "expires_at": 1893456000}).encode(),
        b"\x00" + b'{"token": 5}',
        b"\x01" + json.dumps({"Version": 1, "AccessKeyId": "AKIAEXAMPLE0000",
                              "SecretAccessKey": "secretsecretsecret", "SessionToken": "st",
                              "Expiration": "2026-12-02T10:00:00.123+01:00"}).encode(),
        b"\x01" + b'{"Version": 2, "AccessKeyId": "secretsecretsecret"}',
        b"\x02" + b"2026-12-02T10:00:00.5-07:30",
        b"\x02" + b"2201-01-01T00:00:00Z",
        b"\x03" + b"/bucket/key%20a?list-type=2&prefix=a%2Fb\nHost: s3.us-west-2.amazonaws.com\n"
        b"X-Amz-Date: 20260101T000000Z\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\n"
        b"Authorization: AWS4-HMAC-SHA256 Credential=AKIAPLACEHOLDER/20260101/us-west-2/s3/"
        b"aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00",
        b"\x03" + b"/\nHost: sts.amazonaws.com\nX-Amz-Content-Sha256: "
        b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nAuthorization: AWS4-HMAC-SHA256 Credential=A/"
        b"20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=1",
    ])
    configs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "policies", "*.yaml"))):
        with open(path, "rb") as f:
            configs.append(b"\x01" + f.read())
    configs.append(b"\x00" + b"""listen:
  proxy: 127.0.0.1:3128
  control: /run/airlock/control.sock
  metrics: 127.0.0.1:9464
  dns: 0.0.0.0:53
  transparent: 0.0.0.0:15001
workers: 2
audit: {path: /var/log/airlock/audit.jsonl, rotate_bytes: 1048576, sync_interval_ms: 50}
resolver: {servers: ["127.0.0.53:53"], timeout_ms: 500}
tls: {leaf_validity_hours: 12}
credentials:
  github:
    source: {type: static, env: GITHUB_TOKEN}
    inject: {header: Authorization, value: "Bearer {token}"}
    placeholder: {env: GITHUB_TOKEN, prefix: ghp_}
  openai:
    source: {type: exec, command: [/usr/local/bin/mint, --scope, api], timeout_ms: 2000}
    inject: {header: Authorization, value: "Bearer {token}"}
    body: {json_fields: [api_key], max_bytes: 65536}
limits: {max_request_line: 4096, header_timeout_ms: 5000}
""")
    configs.append(b"\x00" + b"listen:\n  proxy: 1.2.3.4\nworkers: -1\nbogus: [\n")
    write("config_yaml", configs)
    plain, last = audit_log("")
    more, _ = audit_log("", n=2, start=5, prev=last)
    keyed, _ = audit_log("fuzz-hmac-key")
    write("audit_verify", [b"\x00" + plain.encode(), b"\x00" + plain.encode() + b"\x00" + more.encode(),
                           b"\x01" + keyed.encode(), b"\x00" + plain.encode()[:-20],
                           b"\x00" + plain.encode().replace(b"s1", b"s2", 1)])
    write("control_api", [
        'POST /v1/sessions\n{"policy":"default","source":"100.96.0.2","ttl_seconds":60,'
        '"labels":{"agent":"a"},"id":"s1"}',
        'POST /v1/sessions\n{"policy":"github","token":true}',
        "GET /v1/sessions\n", "GET /v1/sessions/s1\n", "DELETE /v1/sessions/nope\n",
        "GET /v1/health\n", "POST /v1/reload\n", "GET /v1/ca\n", "PUT /v1/sessions\n{}",
        'POST /v1/sessions\n{"policy":"default","labels":{"a":1},"extra":true}',
        'RESTORE -\n{"sessions": [{"id": "s1", "policy": "default", "source": "100.96.0.2", '
        '"token_sha256": "' + "ab" * 32 + '", "created": 1800000000, "expires": 4000000000, '
        '"labels": {"a": "b"}, "placeholders": [{"credential": "github", "env": "GITHUB_TOKEN", '
        '"value": "ghp_x"}]}, {"id": 7}]}',
    ])
    b64 = base64.b64encode(b"hello\n").decode()
    lines = [{"event": "ready", "uptime_ms": 812}, {"id": 0, "ok": True, "uptime_ms": 900},
             {"id": 3, "stream": "stdout", "data": b64}, {"id": 3, "stream": "stderr", "data": "!!"},
             {"id": 3, "exit_code": 0, "signal": 0, "duration_ms": 12, "timed_out": False},
             {"id": 4, "error": "no such file", "exit_code": 127}, {"id": "4", "ok": 1},
             {"op": "exec", "id": 7, "argv": ["sh", "-c", "true"], "env": {"A": "b"},
              "timeout_ms": 1000},
             {"id": 8, "ok": True, "jobs": [{"job": "job-1", "pid": 42, "command": "sleep 600",
                                             "output": "/run/airlock/jobs/job-1.log",
                                             "running": True}]},
             {"id": 9, "jobs": [{"pid": "x"}]}, {"id": 9, "jobs": [[1]]}]
    channel = "".join(json.dumps(l) + "\n" for l in lines).encode()
    write("h2_session", h2_streams())
    write("unix_http_answer", [
        b"\x00HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n",
        b"\x05HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Content-Length: 38\r\n\r\n{\"fault_message\":\"No space on device\"}",
        b"\x01HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra",
        b"\x02HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"certificate\":\"x\"}",
        b"\x03HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
        b"\x04HTTP/1.1 2x0 OK\r\n\r\n",
        b"\x06HTTP/1.0 200\r\nContent-Length:  7 \r\nContent-Length: 3\r\n\r\nabcdefg",
    ])
    write("line_channel", [b"\x00" + channel, b"\x07" + channel, b"\x01[1,2]\n{\"id\":1\n",
                           b"\x02" + b"{\"id\": 1, \"data\": \"\xff\xfe\"}\n",
                           b"\x03" + b"[" * 200 + b"\n"])


if __name__ == "__main__":
    main()
