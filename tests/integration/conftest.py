"""Fixtures for the gateway's integration tests. They run inside the network namespace that
run_in_netns.sh creates: the real airlock-gateway binary, real curl and openssl, a stub DNS
server, upstream servers on 127.0.0.x that record what they receive, and canary listeners on the
internal addresses that attacks aim at. Every test ends by asserting that no canary was hit."""
import http.client
import json
import os
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

CANARY_ADDRESSES = ["169.254.169.254", "169.254.170.2", "10.0.0.1", "192.168.0.1", "172.16.0.1",
                    "100.64.0.1", "100.100.100.200", "192.0.0.192", "fd00:ec2::254", "fd12::1"]
CANARY_PORTS = [80, 443, 8080, 8443, 9000, 5432]

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
    def __init__(self, addresses=tuple(CANARY_ADDRESSES)):
        self.hits = []
        self.socks = []
        for addr in addresses:
            for port in CANARY_PORTS:
                s = listen(addr, port)
                self.socks.append(s)
                serve(s, lambda c, hit=(addr, port): (self.hits.append(hit), c.close()))


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
        self.proc = subprocess.Popen([GATEWAY_BIN, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited: " + open(self.log.name).read())
            try:
                self.api("GET", "/v1/health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not come up")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

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
    return Canaries()


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
    assert canaries.hits[before:] == [], "a connection reached a canary (internal address)"


@pytest.fixture
def gateway(tmp_path, dns, upstream, tls_upstream):
    g = Gateway(str(tmp_path), dns)
    upstream.requests.clear()
    yield g
    g.stop()
