"""HTTPS upstreams for the TLS-inspection tests: a throw-away PKI made with the openssl CLI (a
root CA the gateway is told to trust, a rogue CA it is not, and leaf certificates that are valid,
expired, not yet valid, for the wrong name, or from the rogue CA), and a threaded Python `ssl`
server that records every request it receives (method, target, headers, body digest, which
connection) and can answer plainly, stream Server-Sent Events, stream a large body, digest an
upload without keeping it, serve static files (a git repository over git's dumb HTTP protocol)
and echo WebSocket messages after a 101."""
import base64
import datetime
import hashlib
import json
import ipaddress
import os
import random
import struct
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings

from conftest import listen, serve

BLOCK = 1 << 20
_BASE_BLOCK = random.Random(20240501).randbytes(BLOCK)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern_blocks(n):
    """n bytes of a deterministic pattern, 1 MiB at a time: each block is the base block with its
    index in the first 8 bytes, so a dropped, repeated or reordered block changes the digest.
    Nothing is held beyond one block."""
    i = 0
    while n > 0:
        block = struct.pack(">Q", i) + _BASE_BLOCK[8:]
        yield block[:n] if n < BLOCK else block
        n -= BLOCK
        i += 1


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _utc(delta):
    return (datetime.datetime.now(datetime.timezone.utc) + delta).strftime("%Y%m%d%H%M%SZ")


def _san(name):
    """A subjectAltName entry: IP for an address literal, DNS otherwise."""
    try:
        ipaddress.ip_address(name)
        return "IP:" + name
    except ValueError:
        return "DNS:" + name


class Pki:
    """The test CAs and leaves, all EC P-256, in `directory`."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_cert, self.ca_key = self._ca("upstream-ca", "Airlock test upstream CA")
        self.rogue_cert, self.rogue_key = self._ca("rogue-ca", "Untrusted rogue CA")
        self._serial = 1000

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        cert, key = self._path(name + ".crt"), self._path(name + ".key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash")
        return cert, key

    def leaf(self, name, dns_names, rogue=False, not_before=None, not_after=None):
        """A leaf certificate for `dns_names` signed by the test CA (or the rogue one), valid
        from `not_before` to `not_after` (timedeltas from now; default: an hour ago to a day
        ahead). Returns (cert, key) paths."""
        ca_cert, ca_key = (self.rogue_cert, self.rogue_key) if rogue else (self.ca_cert,
                                                                             self.ca_key)
        cert, key, csr = (self._path(name + ext) for ext in (".crt", ".key", ".csr"))
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={dns_names[0]}")
        ext = self._path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(_san(n) for n in dns_names) + "\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
        # `openssl ca` is the CLI that takes explicit dates (expired, not yet valid).
        db = self._path(name + ".db")
        os.makedirs(db, exist_ok=True)
        open(os.path.join(db, "index.txt"), "w").close()
        self._serial += 1
        with open(os.path.join(db, "serial"), "w") as f:
            f.write(f"{self._serial:04X}\n")
        cnf = os.path.join(db, "ca.cnf")
        with open(cnf, "w") as f:
            f.write(f"""[ca]
default_ca = test
[test]
database = {db}/index.txt
new_certs_dir = {db}
serial = {db}/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
""")
        nb = not_before if not_before is not None else datetime.timedelta(hours=-1)
        na = not_after if not_after is not None else datetime.timedelta(days=1)
        _openssl("ca", "-batch", "-notext", "-config", cnf, "-cert", ca_cert, "-keyfile", ca_key,
                 "-in", csr, "-out", cert, "-extfile", ext, "-startdate", _utc(nb),
                 "-enddate", _utc(na))
        return cert, key


class Request:
    def __init__(self, method, target, version, headers, conn, sni):
        self.method, self.target, self.version = method, target, version
        self.headers = headers  # lower-case name -> list of values, in order
        self.conn = conn        # which accepted connection (1, 2, ...)
        self.sni = sni
        self.body = b""         # the first 64 KiB
        self.body_len = 0
        self.body_sha256 = hashlib.sha256().hexdigest()

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def __repr__(self):
        return f"<{self.method} {self.target} conn={self.conn} len={self.body_len}>"


class HttpsUpstream:
    """An HTTPS/1.1 server on address:port with one certificate. Per path:
      /sse            text/event-stream: event 1, then waits for `sse_release`, then event 2
      /download?bytes=N   N bytes of pattern_blocks(N), streamed; `sent_bytes` as it goes,
                      `sent_sha256` afterwards
      /slow?ms=N      answers after N ms of silence
      /echo           reflects the request's Authorization in a header and a JSON body
      /redirect?to=U  302 to U
      /upload         digests the body as it arrives; answers {"bytes": n, "sha256": hex}
                      (sends 100 Continue first when asked to)
      /ws             WebSocket: 101, then echoes every message (recorded in ws_messages)
      static prefixes files below a directory (add with `static`)
      anything else   200 "hello METHOD TARGET"
    """

    def __init__(self, address, port, cert, key, legacy_tls=False):
        self.address, self.port = address, port
        self.cert = cert
        self.requests = []
        self.snis = []           # the SNI of every handshake attempt
        self.handshake_errors = []
        self.connections = 0
        self.ws_messages = []
        self.sse_release = threading.Event()
        self.sse_waited = None   # True: event 2 was sent because the test released it
        self.sent_sha256 = None
        self.sent_bytes = 0      # body bytes of /download handed to the socket
        self.static_roots = {}
        self.lock = threading.Lock()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        if legacy_tls:  # TLS 1.0 and 1.1 only, which a verifying client must refuse
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.ctx.minimum_version = ssl.TLSVersion.TLSv1
                self.ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.ctx.sni_callback = self._on_sni
        with open(cert) as f:
            self.cert_der = ssl.PEM_cert_to_DER_cert(f.read())
        self.sock = listen(address, port, 64)
        serve(self.sock, self._serve)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.snis.clear()
            self.handshake_errors.clear()
            self.ws_messages.clear()
            self.connections = 0
            self.sse_release.clear()
            self.sse_waited = None
            self.sent_sha256 = None
            self.sent_bytes = 0

    def _on_sni(self, sock, name, ctx):
        self.snis.append(name)
        sock.airlock_sni = name

    def static(self, prefix, directory):
        self.static_roots[prefix] = directory

    def close(self):
        self.sock.close()

    # --- the connection ---------------------------------------------------------------------

    def _serve(self, raw):
        raw.settimeout(60)
        with self.lock:
            self.connections += 1
            conn = self.connections
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.handshake_errors.append(repr(e))
            raw.close()
            return
        sni = getattr(tls, "airlock_sni", None)
        rfile = tls.makefile("rb", buffering=65536)
        try:
            while self._one_request(tls, rfile, conn, sni):
                pass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            rfile.close()
            try:
                tls.close()
            except OSError:
                pass

    def _one_request(self, tls, rfile, conn, sni):
        head = read_request_head(rfile)
        if head is None:
            return False
        method, target, version, headers = head
        req = Request(method, target, version, headers, conn, sni)
        with self.lock:
            self.requests.append(req)
        path = target.split("?", 1)[0]
        close = (req.header("connection") or "").lower() == "close"

        if path == "/ws" and (req.header("upgrade") or "").lower() == "websocket":
            self._websocket(tls, rfile, req)
            return False
        if (req.header("expect") or "").lower() == "100-continue":
            tls.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        digest = hashlib.sha256()
        for chunk in _body_chunks(rfile, headers):
            if len(req.body) < 65536:
                req.body += chunk[:65536 - len(req.body)]
            req.body_len += len(chunk)
            digest.update(chunk)
        req.body_sha256 = digest.hexdigest()

        if path == "/sse":
            self._sse(tls)
            return not close
        if path == "/download":
            n = int(dict(p.split("=", 1) for p in target.split("?", 1)[1].split("&"))["bytes"])
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Length: " + str(n).encode() + b"\r\n\r\n")
            sent = hashlib.sha256()
            for block in pattern_blocks(n):
                tls.sendall(block)
                sent.update(block)
                with self.lock:
                    self.sent_bytes += len(block)
            self.sent_sha256 = sent.hexdigest()
            return not close
        if path == "/slow":  # answers after ms milliseconds of silence
            ms = int(dict(p.split("=", 1) for p in target.split("?", 1)[1].split("&"))["ms"])
            time.sleep(ms / 1000)
            self._respond(tls, 200, f"slow {ms}".encode(), "text/plain", close)
            return not close
        if path == "/echo":  # reflects the request's Authorization, as debug endpoints do
            auth = req.header("authorization") or ""
            body = json.dumps({"authorization": auth}).encode()
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"X-Echo-Authorization: " + auth.encode() + b"\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            half = len(body) // 2  # two writes: the value may arrive split
            tls.sendall(body[:half])
            tls.sendall(body[half:])
            return not close
        if path == "/redirect":
            to = urllib.parse.parse_qs(req.target.split("?", 1)[1])["to"][0]
            tls.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + to.encode() +
                        b"\r\nContent-Length: 0\r\n\r\n")
            return not close
        if path == "/upload":
            body = json.dumps({"bytes": req.body_len, "sha256": req.body_sha256}).encode()
            self._respond(tls, 200, body, "application/json", close)
            return not close
        for prefix, root in self.static_roots.items():
            if path.startswith(prefix):
                file = os.path.normpath(os.path.join(root, path[len(prefix):]))
                if file.startswith(root) and os.path.isfile(file):
                    with open(file, "rb") as f:
                        self._respond(tls, 200, f.read(), "application/octet-stream", close)
                else:
                    self._respond(tls, 404, b"not found", "text/plain", close)
                return not close
        self._respond(tls, 200, f"hello {method} {target}".encode(), "text/plain", close,
                      head_only=method == "HEAD")
        return not close

    @staticmethod
    def _respond(tls, status, body, content_type, close, head_only=False):
        reason = {200: "OK", 404: "Not Found"}[status]
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "")
                + "\r\n")
        tls.sendall(head.encode() + (b"" if head_only else body))

    def _sse(self, tls):
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        tls.sendall(_chunk(b"id: 1\ndata: event one\n\n"))
        # Released by the test once its client has seen event 1; else, after the deadline.
        self.sse_waited = self.sse_release.wait(timeout=20)
        tls.sendall(_chunk(b"id: 2\ndata: event two\n\n") + b"0\r\n\r\n")

    def _websocket(self, tls, rfile, req):
        key = req.header("sec-websocket-key") or ""
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        tls.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        while True:
            opcode, payload = read_ws_frame(rfile)
            if opcode is None:
                return
            if opcode == 8:  # close: answer it and stop
                tls.sendall(ws_frame(8, payload[:2]))
                return
            if opcode == 9:  # ping
                tls.sendall(ws_frame(10, payload))
                continue
            self.ws_messages.append(payload)
            tls.sendall(ws_frame(opcode, payload))


def _chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def read_request_head(rfile):
    """(method, target, version, headers: lower-case name -> values) of the next request on
    `rfile`, or None at the end of the connection."""
    line = rfile.readline(65537)
    if not line:
        return None
    method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = {}
    while True:
        h = rfile.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return method, target, version, headers


def _body_chunks(rfile, headers):
    """The request body, as it arrives."""
    te = ",".join(headers.get("transfer-encoding", [])).lower()
    if "chunked" in te:
        while True:
            size = int(rfile.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from _read_exactly(rfile, size)
            rfile.readline(16)
    elif "content-length" in headers:
        yield from _read_exactly(rfile, int(headers["content-length"][0]))


def _read_exactly(rfile, left):
    """`left` bytes from rfile, in blocks; ValueError if it ends first."""
    while left:
        d = rfile.read(min(left, BLOCK))
        if not d:
            raise ValueError("body cut short")
        left -= len(d)
        yield d


def ws_frame(opcode, payload, mask=None):
    """One final WebSocket frame; masked (as clients must) when `mask` (4 bytes) is given."""
    head = bytes([0x80 | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def read_ws_frame(rfile):
    """(opcode, payload) of the next frame, unmasked; (None, None) at EOF."""
    h = rfile.read(2)
    if len(h) < 2:
        return None, None
    opcode, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if h[1] & 0x80 else None
    payload = rfile.read(n) if n else b""
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload


class PlainServer:
    """Not TLS at all: answers every connection with a plaintext HTTP error and closes.
    `connections` counts them."""

    def __init__(self, address, port):
        self.connections = 0
        self.sock = listen(address, port)
        serve(self.sock, self._serve)

    def reset(self):
        self.connections = 0

    def _serve(self, c):
        self.connections += 1
        try:
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        c.close()

    def close(self):
        self.sock.close()
