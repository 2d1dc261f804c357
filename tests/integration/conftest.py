"""Fixtures for the gateway's integration tests. They run inside the network namespace that
run_in_netns.sh creates: the real airlock-gateway binary, real curl and openssl, a stub DNS
server, upstream servers on 127.0.0.x that record what they receive, and canary listeners on the
internal addresses that attacks aim at. Every test ends by asserting that no canary was hit."""
import http.client
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from dnsstub import DnsStub

BUILD = os.environ.get("AIRLOCK_BUILD", "build/release")
GATEWAY_BIN = os.path.join(BUILD, "gateway", "airlock-gateway")
CTL_BIN = os.path.join(BUILD, "gateway", "airlockctl", "airlockctl")
VMLAUNCH_BIN = os.path.join(BUILD, "vmlaunch", "vmlaunch")
PROXY = "http://127.0.0.1:3128"
# What AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer print when they find a bug.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

CANARY_ADDRESSES = ["169.254.169.254", "169.254.170.2", "10.0.0.1", "192.168.0.1", "172.16.0.1",
                    "100.64.0.1", "100.100.100.200", "192.0.0.192", "fd00:ec2::254", "fd12::1"]
# Every port the tests aim at, watched on TCP and UDP alike: the web, TLS and raw ports of the
# policies, a port no rule allows (9999), a database, DNS and DNS over TLS, NTP, mDNS and the
# sandbox tests' leak ports. The gateway's own ports (3128, 9464, 15001, 15053) are left out:
# the gateway listens on every address there in the link tests, so a connection to them lands
# on the gateway itself, and a canary bound there would stop it from starting.
CANARY_PORTS = [53, 80, 123, 443, 853, 5353, 5354, 5432, 8080, 8443, 9000, 9999]
CANARY_BANNER = b"AIRLOCK-CANARY-REACHED\n"

DEFAULT_POLICY = """
version: v1
name: test
egress:
  - id: web
    hosts: [web.test]
    protocol: http
    ports: [8080]
  - id: api
    hosts: [api.test]
    protocol: http
    ports: [8080]
    http:
      methods: [GET]
      paths: ["/v1/**"]
  - id: tls
    hosts: [tls.test]
    ports: [8443]
  - id: raw
    hosts: [raw.test]
    ports: [9000]
    protocol: tcp
  - id: hostile
    hosts: ["*.evil.test"]
    protocol: http
    ports: [80, 8080]
  - id: hostile-tls
    hosts: ["*.evil.test"]
    ports: [443, 8443]
deny:
  hosts: [blocked.web.test]
private:
  - id: upstreams
    cidr: 127.0.0.0/29
    ports: [8080, 8443, 9000]
"""


def listen(address, port, backlog=16):
    """A listening TCP socket on address:port (IPv4 or IPv6)."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(backlog)
    return s


def serve(sock, on_connection):
    """Accepts connections on a thread of its own until the socket closes; on_connection(conn)
    runs on a thread per connection."""
    def loop():
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=on_connection, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


class Canaries:
    """Listeners on internal addresses that nothing may reach: a TCP listener and a UDP socket on
    every address and port given. A TCP canary records the connection and answers
    CANARY_BANNER before it closes (so a client that got through can tell); a UDP canary
    records every datagram. One thread serves them all. `hits` lists (proto, address, port,
    peer) for everything that arrived; `sync()` makes sure everything that arrived before it
    has been recorded. close() releases every socket."""

    def __init__(self, addresses=tuple(CANARY_ADDRESSES), ports=tuple(CANARY_PORTS)):
        self.hits = []
        self._cond = threading.Condition()
        self._markers = set()  # sync markers not yet seen: (proto, address, port, tag)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self.targets = []  # (proto, address, port)
        self._closed = False
        try:
            for addr in addresses:
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                for port in ports:
                    t = listen(addr, port, 128)
                    t.setblocking(False)
                    self._sel.register(t, selectors.EVENT_READ, ("tcp", addr, port))
                    u = socket.socket(fam, socket.SOCK_DGRAM)
                    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    u.bind((addr, port))
                    u.setblocking(False)
                    self._sel.register(u, selectors.EVENT_READ, ("udp", addr, port))
                    self.targets += [("tcp", addr, port), ("udp", addr, port)]
        except Exception:
            self.close()
            raise
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _record(self, proto, addr, port, peer, tag):
        with self._cond:
            key = (proto, addr, port, tag)
            if key in self._markers:
                self._markers.discard(key)
            else:
                self.hits.append((proto, addr, port, peer))
            self._cond.notify_all()

    def _loop(self):
        while True:
            for key, _ in self._sel.select():
                if key.data is None:
                    return
                proto, addr, port = key.data
                sock = key.fileobj
                while True:
                    try:
                        if proto == "tcp":
                            c, peer = sock.accept()
                        else:
                            data, peer = sock.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if proto == "tcp":
                        self._record(proto, addr, port, peer[:2], peer[1])
                        try:
                            c.setblocking(True)
                            c.settimeout(1)
                            c.sendall(CANARY_BANNER)
                        except OSError:
                            pass
                        c.close()
                    else:
                        self._record(proto, addr, port, peer[:2], data)

    def sync(self, timeout=10.0):
        """A positive synchronisation point: sends a marker of its own to every canary (a
        connection, a datagram) and waits until each has been seen. A listener's queue is first
        in, first out, so whatever reached a canary before the marker is in `hits` now."""
        pending = set()
        try:
            for proto, addr, port in self.targets:
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                with socket.socket(fam, kind) as s:
                    if proto == "tcp":  # the marker is the client's port, known before connect
                        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
                        key = ("tcp", addr, port, s.getsockname()[1])
                    else:
                        key = ("udp", addr, port,
                               b"airlock-canary-sync " + os.urandom(8).hex().encode())
                    with self._cond:
                        self._markers.add(key)
                    pending.add(key)
                    if proto == "tcp":
                        s.settimeout(timeout)
                        s.connect((addr, port))  # accepted even after this close
                    else:
                        s.sendto(key[3], (addr, port))
            deadline = time.monotonic() + timeout
            with self._cond:
                while pending & self._markers:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise AssertionError(f"canaries did not see their sync markers: "
                                             f"{sorted(pending & self._markers)[:5]}")
                    self._cond.wait(left)
        finally:
            with self._cond:
                self._markers -= pending

    def new_hits(self, since):
        """The hits after the first `since`, once everything sent so far has arrived."""
        self.sync()
        with self._cond:
            return list(self.hits[since:])

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._wake_w.send(b"x")
        if getattr(self, "_thread", None):
            self._thread.join(timeout=5)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()
        self._wake_w.close()


class RawHttpUpstream:
    """Records every request exactly as received (head bytes and body), answers 200, or 101 and
    echo for WebSocket upgrades."""

    def __init__(self, address, port):
        self.requests = []
        self.connections = 0
        self.raw = []
        self.sock = listen(address, port, 64)
        serve(self.sock, self._serve)

    def _serve(self, c):
        self.connections += 1
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                    self.raw.append(d)
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for l in lines[1:]:
                    k, v = l.split(":", 1)
                    headers.setdefault(k.strip().lower(), []).append(v.strip())
                body = b""
                if "content-length" in headers:
                    n = int(headers["content-length"][0])
                    while len(buf) < n:
                        d = c.recv(65536)
                        if not d:
                            return
                        buf += d
                    body, buf = buf[:n], buf[n:]
                elif headers.get("transfer-encoding") == ["chunked"]:
                    while True:
                        while b"\r\n" not in buf:
                            buf += c.recv(65536)
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line, 16)
                        while len(buf) < size + 2:
                            buf += c.recv(65536)
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                method, target, _ = lines[0].split(" ", 2)
                self.requests.append({"method": method, "target": target, "headers": headers,
                                      "body": body, "head": head})
                if headers.get("upgrade", [""])[0].lower() == "websocket":
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: websocket\r\n\r\n")
                    while True:
                        d = c.recv(65536)
                        if not d:
                            return
                        c.sendall(d)
                payload = f"hello {method} {target}".encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                          + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        except OSError:
            return
        finally:
            c.close()


class TlsUpstream:
    """A TLS server for tls.test that records the SNI of every handshake."""

    def __init__(self, address, port, tmp):
        self.cert = os.path.join(tmp, "tls.crt")
        key = os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", self.cert,
                        "-days", "1", "-subj", "/CN=tls.test", "-addext",
                        "subjectAltName=DNS:tls.test"], check=True, capture_output=True)
        self.snis = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert, key)
        self.ctx.sni_callback = lambda s, name, c: self.snis.append(name)
        self.sock = listen(address, port)
        serve(self.sock, self._serve)

    def _serve(self, c):
        try:
            with self.ctx.wrap_socket(c, server_side=True) as t:
                t.recv(65536)
                t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                          b"tls hello")
        except (OSError, ssl.SSLError):
            pass


class Gateway:
    def __init__(self, tmp, dns, policies=None, extra_config=""):
        self.dir = tmp
        self.policy_dir = os.path.join(tmp, "policies")
        os.makedirs(self.policy_dir, exist_ok=True)
        for name, text in (policies or {"test": DEFAULT_POLICY}).items():
            self.write_policy(name, text)
        self.audit = os.path.join(tmp, "audit", "audit.jsonl")
        self.control = os.path.join(tmp, "control.sock")
        self.config = os.path.join(tmp, "airlock.yaml")
        with open(self.config, "w") as f:
            f.write(f"""listen:
  proxy: 127.0.0.1:3128
  control: {self.control}
  metrics: 127.0.0.1:9464
  dns: 127.0.0.1:15053
workers: 2
state_dir: {tmp}/state
policy_dir: {self.policy_dir}
audit:
  path: {self.audit}
resolver:
  servers: ["{dns.address}"]
  timeout_ms: 500
{extra_config}""")
        self.proc = None
        self.start()

    def serve_links(self, proxy=True):
        """Restarts the gateway listening where sandbox links reach it: the DNS responder and
        the transparent listener on every address, and (with `proxy`) the proxy too."""
        self.stop()
        with open(self.config) as f:
            cfg = f.read().replace("  dns: 127.0.0.1:15053\n",
                                   "  dns: 0.0.0.0:15053\n  transparent: 0.0.0.0:15001\n")
        if proxy:
            cfg = cfg.replace("  proxy: 127.0.0.1:3128\n", "  proxy: 0.0.0.0:3128\n")
        with open(self.config, "w") as f:
            f.write(cfg)
        self.log.close()
        self.start()

    def write_policy(self, name, text):
        with open(os.path.join(self.policy_dir, name + ".yaml"), "w") as f:
            f.write(text)

    def start(self):
        if os.path.exists(self.control):
            os.unlink(self.control)
        self.log = open(os.path.join(self.dir, "gateway.log"), "ab")
        self.log_offset = self.log.tell()  # where this process's output begins
        self.proc = subprocess.Popen([GATEWAY_BIN, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        self.proc.checked = False
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.proc.checked = True  # reported here, as the start's failure
                raise RuntimeError("gateway exited: " + open(self.log.name).read())
            try:
                self.api("GET", "/v1/health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not come up")

    def kill(self):
        """kill -9, deliberately: no exit status or sanitizer check for this process."""
        self.proc.kill()
        self.proc.wait()
        self.proc.checked = True

    def stop(self, sig=signal.SIGTERM):
        """Stops the gateway with `sig` and checks how it ended: exit status 0 after SIGTERM (or
        after ending by itself), and no sanitizer report in what it wrote. A gateway the test
        killed with kill() is not checked."""
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                p.checked = True
                self.log.close()
                raise AssertionError(f"the gateway did not exit within 15 s of signal {sig}")
        self.log.close()
        if p and not getattr(p, "checked", True):
            p.checked = True
            self.check_exit(p, sig)

    def check_exit(self, p, sig):
        with open(self.log.name, "rb") as f:
            f.seek(self.log_offset)
            output = f.read().decode("utf-8", "replace")
        for marker in SANITIZER_MARKERS:
            assert marker not in output, \
                f"the gateway's log holds a sanitizer report ({marker!r}):\n{output[-6000:]}"
        if sig in (signal.SIGTERM, signal.SIGINT):
            assert p.returncode == 0, \
                f"the gateway exited with status {p.returncode}:\n{output[-3000:]}"

    def api(self, method, path, body=None):
        conn = UnixHTTPConnection(self.control)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, (json.loads(data) if data else None)

    def session(self, policy="test", source="127.0.0.1", token=False, **extra):
        body = {"policy": policy, "token": token, **extra}
        if source:
            body["source"] = source
        status, s = self.api("POST", "/v1/sessions", body)
        assert status == 201, s
        return s

    def records(self, wait_for=None, timeout=3.0):
        """The audit log's records; with wait_for(records) -> bool, polls until it holds."""
        deadline = time.time() + timeout
        while True:
            recs = read_records(self.audit) if os.path.exists(self.audit) else []
            if wait_for is None or wait_for(recs) or time.time() > deadline:
                return recs
            time.sleep(0.02)

    def events(self, event, **match):
        return [r for r in self.records() if r.get("event") == event
                and all(r.get(k) == v for k, v in match.items())]


def read_records(path):
    """The complete records of an audit log. One read(): the log may be growing, and only a
    prefix ending in a newline is certain to hold whole records."""
    with open(path) as f:
        data = f.read()
    return [json.loads(line) for line in data.split("\n")[:-1]]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.unix_path)
        self.sock = s


def curl(*args, user=None, proxy=PROXY):
    cmd = ["curl", "-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", "--proxy", proxy]
    if user:
        cmd += ["--proxy-user", user]
    out = subprocess.run(cmd + list(args), capture_output=True)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code or 0), body


def recv_all(sock):
    """Everything the peer sends until it closes (or the socket's timeout passes)."""
    out = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    return out


def raw_request(data, timeout=5.0):
    """Sends bytes to the proxy and returns everything it answers until it closes."""
    s = socket.create_connection(("127.0.0.1", 3128), timeout=timeout)
    s.sendall(data)
    out = recv_all(s)
    s.close()
    return out


@pytest.fixture(scope="session")
def canaries():
    c = Canaries()
    yield c
    c.close()


@pytest.fixture(scope="session")
def dns():
    d = DnsStub()
    yield d
    d.close()


@pytest.fixture(scope="session")
def upstream():
    return RawHttpUpstream("127.0.0.2", 8080)


@pytest.fixture(scope="session")
def tls_upstream(tmp_path_factory):
    return TlsUpstream("127.0.0.3", 8443, str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(autouse=True)
def no_canary_hits(canaries, dns):
    """Every test: no connection reached an internal address (the canaries)."""
    dns.answers.clear()
    dns.set("web.test", [("A", "127.0.0.2", 60)])
    dns.set("blocked.web.test", [("A", "127.0.0.2", 60)])
    dns.set("api.test", [("A", "127.0.0.2", 60)])
    dns.set("tls.test", [("A", "127.0.0.3", 60)])
    dns.set("raw.test", [("A", "127.0.0.4", 60)])
    before = len(canaries.hits)
    yield
    assert canaries.new_hits(before) == [], "traffic reached a canary (internal address)"


@pytest.fixture
def gateway(tmp_path, dns, upstream, tls_upstream):
    g = Gateway(str(tmp_path), dns)
    upstream.requests.clear()
    yield g
    g.stop()
