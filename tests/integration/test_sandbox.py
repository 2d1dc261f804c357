"""Transparent capture and the sandbox firewall: a sandbox namespace whose only link is a veth to
the gateway's namespace, where vmlaunch's nftables table sends its DNS to the responder and every
other TCP connection to the transparent listener, and drops everything else. Tools that ignore HTTP_PROXY still get exactly the policy: TLS decided on the SNI and
dialled at an address the gateway resolved itself, HTTP decided on Host, opaque TCP decided on
the name the responder handed out for that address; everything else is reset and audited."""
import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (CANARY_BANNER, VMLAUNCH_BIN, Canaries, Gateway, RawHttpUpstream,
                      TlsUpstream, listen, serve)
from tls_upstreams import HttpsUpstream, Pki

SANDBOX_POLICY = """
version: v1
name: sb
egress:
  - {id: tls, hosts: [tls.test], ports: [8443]}
  - {id: web, hosts: [web.test], protocol: http, ports: [8080]}
  - {id: raw, hosts: [raw.test], protocol: tcp, ports: [9000]}
private:
  - {id: upstreams, cidr: 10.77.0.0/24, ports: [8080, 8443, 9000]}
"""


class Sandbox:
    """A network namespace wired to this one through a veth pair, with nftables redirecting its
    traffic to the gateway. Removed in close(), even after a failure."""

    def __init__(self):
        tag = f"{os.getpid() % 10000}{random.randrange(100000):05d}"
        self.ns = f"al-sb-{tag}"
        self.host_if = f"alvh{tag}"[:15]
        self.etc = f"/etc/netns/{self.ns}"
        try:
            self._create()
        except Exception:
            self.close()
            raise

    def _create(self):
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
            "netns", self.ns)
        run("ip", "addr", "add", "100.96.0.1/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "addr", "add", "100.96.0.2/30", "dev", "eth0")
        run("ip", "-n", self.ns, "link", "set", "eth0", "up")
        run("ip", "-n", self.ns, "route", "add", "default", "via", "100.96.0.1")
        os.makedirs(self.etc, exist_ok=True)
        with open(f"{self.etc}/resolv.conf", "w") as f:
            f.write("nameserver 100.96.0.1\noptions attempts:1 timeout:2\n")
        # The product's firewall: vmlaunch installs the airlock table and registers the link.
        run(VMLAUNCH_BIN, "net", "install")
        run(VMLAUNCH_BIN, "net", "add-link", self.host_if, "100.96.0.2")

    def run(self, *args, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns, *args], capture_output=True,
                              timeout=20, **kw)

    def close(self):
        subprocess.run([VMLAUNCH_BIN, "net", "remove-link", self.host_if, "100.96.0.2"],
                       capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    for a in ("10.77.0.2", "10.77.0.3", "10.77.0.4"):
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], capture_output=True)
    web = RawHttpUpstream("10.77.0.2", 8080)
    tls = TlsUpstream("10.77.0.3", 8443, str(tmp_path_factory.mktemp("tls2")))
    raw_seen = []
    raw = listen("10.77.0.4", 9000)

    def echo(c):
        data = c.recv(4096)
        raw_seen.append(data)
        c.sendall(b"raw ok: " + data)
        c.close()
    serve(raw, echo)
    return {"web": web, "tls": tls, "raw": raw_seen}


@pytest.fixture
def sandbox(tmp_path, dns, upstreams):
    dns.set("web.test", [("A", "10.77.0.2", 60)])
    dns.set("tls.test", [("A", "10.77.0.3", 60)])
    dns.set("raw.test", [("A", "10.77.0.4", 60)])
    g = Gateway(str(tmp_path), dns, policies={"sb": SANDBOX_POLICY},
                extra_config="")
    g.serve_links(proxy=False)
    sb = None
    try:
        g.session("sb", source="100.96.0.2")
        sb = Sandbox()
        yield sb, g, upstreams
    finally:
        if sb:
            sb.close()
        g.stop()


def test_tools_that_ignore_the_proxy_are_captured(sandbox):
    sb, g, up = sandbox
    n = len(up["tls"].snis)
    r = sb.run("curl", "-s", "--max-time", "10", "--cacert", up["tls"].cert,
               "https://tls.test:8443/")
    assert r.stdout == b"tls hello", r.stderr
    assert up["tls"].snis[n:] == ["tls.test"]
    r = sb.run("curl", "-s", "--max-time", "10", "http://web.test:8080/captured")
    assert r.stdout == b"hello GET /captured"
    assert up["web"].requests[-1]["headers"]["host"] == ["web.test:8080"]
    rec = g.records(lambda x: sum(y["event"] == "connection.open" for y in x) >= 2)
    opened = [x for x in rec if x["event"] == "connection.open"]
    assert {(x["host"], x["proto"], x["decision"], x["original_ip"]) for x in opened} >= {
        ("tls.test", "tls", "allow", "10.77.0.3"), ("web.test", "http", "allow", "10.77.0.2")}
    assert any(x["event"] == "dns.query" and x["name"] == "tls.test" for x in rec)


def test_opaque_tcp_is_decided_on_the_dns_name(sandbox):
    sb, g, up = sandbox
    code = ("import socket; a = socket.getaddrinfo('raw.test', 9000, socket.AF_INET)[0][4]; "
            "s = socket.create_connection(a, timeout=8); s.sendall(b'SSH-2.0-x\\r\\n'); "
            "print(s.recv(100))")
    r = sb.run("/usr/bin/python3", "-c", code)
    assert b"raw ok: SSH-2.0-x" in r.stdout, r.stderr
    rec = g.records(lambda x: any(y.get("proto") == "tcp" for y in x))
    assert any(x["event"] == "connection.open" and x["proto"] == "tcp" and
               x["host"] == "raw.test" and x["rule"] == "raw" for x in rec)


def test_what_the_policy_does_not_allow_is_reset(sandbox, dns):
    sb, g, up = sandbox
    # An address the sandbox never resolved: no name, no connection.
    code = ("import socket\ntry:\n s = socket.create_connection(('10.77.0.4', 9000), timeout=5)\n"
            " s.sendall(b'x'); print(s.recv(10))\nexcept OSError as e: print('refused', e)")
    r = sb.run("/usr/bin/python3", "-c", code)
    assert b"raw ok" not in r.stdout
    # TLS without SNI to an allowed address, and an unknown name.
    assert sb.run("openssl", "s_client", "-connect", "10.77.0.3:8443", "-noservername",
                  input=b"").returncode != 0
    assert sb.run("curl", "-s", "--max-time", "5", "http://unknown.test/").stdout == b""
    # Direct DNS elsewhere is redirected to the responder too: unknown names are NXDOMAIN, and
    # the upstream resolver never hears of them.
    dns.queries.clear()
    r = sb.run("/usr/bin/python3", "-c",
               "import socket\ntry: socket.getaddrinfo('exfil.example', 80)\n"
               "except socket.gaierror as e: print('nx', e)")
    assert b"nx" in r.stdout
    assert all("exfil" not in name for name, _ in dns.queries)
    # DNS over TLS (and over QUIC) to an outside resolver: port 853 has no rule. A canary
    # listens on that address and port (TCP and UDP) here, where the sandbox's packets arrive:
    # without the firewall the connection would reach it.
    with Canaries(["10.77.0.4"], [853]) as dot:
        r = sb.run("openssl", "s_client", "-connect", "10.77.0.4:853", "-servername", "dns.test",
                   input=b"")
        assert r.returncode != 0 and CANARY_BANNER not in r.stdout, r.stdout
        sb.run("/usr/bin/python3", "-c", "import socket; socket.socket(socket.AF_INET, "
               "socket.SOCK_DGRAM).sendto(b'doq', ('10.77.0.4', 853))")
        # An allowed request over the same link after the attempts: the synchronisation point
        # (and the canaries' own sync marker: whatever reached them before is counted).
        after = sb.run("curl", "-s", "--max-time", "10", "http://web.test:8080/after-dot")
        assert dot.new_hits(0) == [], "DNS over TLS (or QUIC) reached its target"
        assert after.stdout == b"hello GET /after-dot", after.stderr
    # The metadata address, directly and however it is written, and through the proxy.
    for url in ("http://169.254.169.254/latest/meta-data/", "http://2852039166/",
                "http://0xA9FEA9FE/", "http://[::ffff:169.254.169.254]/"):
        r = sb.run("curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                   "-H", "Host: 169.254.169.254", url)
        assert r.stdout in (b"403", b"000"), (url, r.stdout)
    r = sb.run("curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
               "--proxy", "http://100.96.0.1:3128", "http://169.254.169.254/")
    assert r.stdout in (b"403", b"000")
    rec = g.records(lambda x: any(y.get("reason") == "sni_missing" for y in x))
    reasons = {x.get("reason") for x in rec if x["event"] == "connection.open"}
    assert {"no_dns_mapping", "sni_missing"} <= reasons, reasons


def test_udp_icmp_ipv6_and_spoofed_sources_go_nowhere(sandbox):
    sb, g, up = sandbox
    # UDP to three ports of an address here, each watched by a canary; then a DNS query over
    # the same link, which the gateway records: once it has, the datagrams sent before it have
    # arrived wherever they were going.
    with Canaries(["10.77.0.4"], [5353, 123, 443]) as leak:
        sb.run("/usr/bin/python3", "-c",
               "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
               "[s.sendto(b'leak', ('10.77.0.4', p)) for p in (5353, 123, 443)]\n"
               "try: socket.getaddrinfo('sync-udp.test', 80, socket.AF_INET)\n"
               "except OSError: pass")
        rec = g.records(lambda x: any(y.get("name") == "sync-udp.test" for y in x), timeout=10)
        assert leak.new_hits(0) == [], "UDP left the sandbox"
        assert any(y.get("name") == "sync-udp.test" for y in rec), "no DNS query recorded"
    assert sb.run("ping", "-c", "1", "-W", "1", "10.77.0.4").returncode != 0
    assert sb.run("ping", "-c", "1", "-W", "1", "100.96.0.1").returncode == 0, "ping the gateway"
    # IPv6 on the link: nothing passes.
    subprocess.run(["ip", "addr", "add", "fd77::1/64", "dev", sb.host_if, "nodad"], check=True)
    sb.run("ip", "addr", "add", "fd77::2/64", "dev", "eth0", "nodad")
    with Canaries(["fd77::1"], [8080]) as v6:
        r = sb.run("/usr/bin/python3", "-c",
                   "import socket\ntry: socket.create_connection(('fd77::1', 8080), timeout=2);"
                   " print('connected')\nexcept OSError as e: print('failed', e)")
        assert r.stdout.startswith(b"failed"), r.stdout
        assert v6.new_hits(0) == [], "IPv6 left the sandbox"
    # A spoofed source (another live session's address, or any other) is dropped before it
    # reaches the gateway.
    g.session("sb", source="100.96.0.9")
    sb.run("ip", "addr", "add", "100.96.0.9/32", "dev", "eth0")
    # A route back to the spoofed address (gone with the link), so that only the firewall can
    # stop the connection, not a reply with nowhere to go.
    subprocess.run(["ip", "route", "add", "100.96.0.9/32", "dev", sb.host_if], check=True)
    r = sb.run("curl", "-s", "--max-time", "3", "--interface", "100.96.0.9",
               "http://10.77.0.2:8080/spoofed")
    assert r.stdout == b""
    # The synchronisation point: a request from the link's own address, after the spoofed one.
    r = sb.run("curl", "-s", "--max-time", "10", "http://web.test:8080/after-spoof")
    assert r.stdout == b"hello GET /after-spoof"
    assert all(x.get("src") != "100.96.0.9" or x["event"] == "session.create"
               for x in g.records())
    assert all(req["target"] != "/spoofed" for req in up["web"].requests)


def test_gateway_down_means_nothing_leaves_and_back_up_works(sandbox):
    sb, g, up = sandbox
    n = len(up["web"].requests)
    g.stop()
    assert sb.run("curl", "-s", "--max-time", "3", "http://10.77.0.2:8080/down").stdout == b""
    assert sb.run("curl", "-s", "--max-time", "3", "http://web.test:8080/down").stdout == b""
    assert len(up["web"].requests) == n, "traffic left while the gateway was down"
    g.log.close()
    g.start()  # the session comes back from the state directory
    r = sb.run("curl", "-s", "--max-time", "10", "http://web.test:8080/up")
    assert r.stdout == b"hello GET /up"


def test_link_elements_are_removed_at_teardown(sandbox):
    sb, g, up = sandbox
    listing = subprocess.run(["nft", "list", "set", "inet", "airlock", "links"],
                             capture_output=True, text=True).stdout
    assert sb.host_if in listing and "100.96.0.2" in listing
    subprocess.run([VMLAUNCH_BIN, "net", "remove-link", sb.host_if, "100.96.0.2"], check=True)
    listing = subprocess.run(["nft", "list", "set", "inet", "airlock", "links"],
                             capture_output=True, text=True).stdout
    assert sb.host_if not in listing
    # Unregistered, the link is an ordinary interface again: its packets are not redirected.
    assert sb.run("curl", "-s", "--max-time", "3", "http://10.77.0.2:8080/").stdout != b""
    subprocess.run([VMLAUNCH_BIN, "net", "add-link", sb.host_if, "100.96.0.2"], check=True)


# vmlaunch run --backend netns: the product's sandbox, end to end.

SANDBOX_POLICY_2 = SANDBOX_POLICY.replace("name: sb", "name: sb2").replace(
    "  - {id: web, hosts: [web.test], protocol: http, ports: [8080]}\n", "")
# TLS the gateway inspects: the sandbox must trust the gateway's CA to talk to api.test.
SANDBOX_POLICY_INSPECT = SANDBOX_POLICY.replace("name: sb", "name: sbi").replace(
    "  - {id: tls,", "  - {id: api, hosts: [api.test], ports: [8443], inspect: true}\n"
    "  - {id: tls,")
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
                "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def inspected_upstream(tmp_path_factory):
    """https://api.test:8443 with a certificate from a CA only the gateway trusts."""
    subprocess.run(["ip", "addr", "add", "10.77.0.5/32", "dev", "lo"], capture_output=True)
    pki = Pki(str(tmp_path_factory.mktemp("pki")))
    up = HttpsUpstream("10.77.0.5", 8443, *pki.leaf("api", ["api.test"]))
    up.pki = pki
    yield up
    up.close()


@pytest.fixture
def launcher(tmp_path, dns, upstreams, inspected_upstream):
    dns.set("web.test", [("A", "10.77.0.2", 60)])
    dns.set("tls.test", [("A", "10.77.0.3", 60)])
    dns.set("api.test", [("A", "10.77.0.5", 60)])
    g = Gateway(str(tmp_path), dns,
                policies={"sb": SANDBOX_POLICY, "sb2": SANDBOX_POLICY_2,
                          "sbi": SANDBOX_POLICY_INSPECT},
                extra_config=f"tls:\n  upstream_ca_file: {inspected_upstream.pki.ca_cert}\n")
    g.serve_links()
    subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
    state = str(tmp_path / "launcher")

    def run(policy, *cmd, env=()):
        return subprocess.run([VMLAUNCH_BIN, "run", "--backend", "netns", "--policy", policy,
                               "--control", g.control, "--state-dir", state,
                               "--pool", "100.97.0.0/24",
                               *(a for kv in env for a in ("--env", kv)), "--", *cmd],
                              capture_output=True, timeout=60)
    try:
        yield g, run, {**upstreams, "api": inspected_upstream}, state
    finally:
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        g.stop()


def leftovers(g, state):
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "list", "set", "inet", "airlock", "links"],
                         capture_output=True, text=True).stdout
    pool = open(os.path.join(state, "address-pool.json")).read()
    return {"netns": [n for n in netns.split() if n.startswith("al-ns-")],
            "links": [l for l in links.splitlines() if ": alh" in l],
            "nft": "100.97." in nft,
            "sessions": g.api("GET", "/v1/sessions")[1]["sessions"],
            "leases": '"100.97.' in pool}


def test_vmlaunch_run_netns(launcher):
    g, run, up, state = launcher
    r = run("sb", "curl", "-s", "http://web.test:8080/via-proxy")
    assert r.returncode == 0 and r.stdout == b"hello GET /via-proxy", r.stderr
    r = run("sb", "curl", "-s", "--noproxy", "*", "--cacert", up["tls"].cert,
            "https://tls.test:8443/")
    assert r.stdout == b"tls hello", r.stderr
    r = run("sb", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://pastebin.example/")
    assert r.stdout == b"403"
    assert run("sb", "sh", "-c", "exit 7").returncode == 7
    r = run("sb", "sh", "-c", "echo $$; hostname; ip -o -4 addr show eth0 | wc -l")
    pid, _, n_addr = r.stdout.decode().split("\n")[:3]
    assert pid == "1", "the command runs in a PID namespace of its own"
    assert n_addr.strip() == "1"
    assert leftovers(g, state) == {"netns": [], "links": [], "nft": False, "sessions": [],
                                   "leases": False}


def test_vmlaunch_run_netns_trusts_the_gateways_ca(launcher):
    """vmlaunch fetches the gateway's CA (GET /v1/ca) and hands the sandbox a bundle of the
    system roots and that CA through the five variables TLS clients read: curl, Python requests
    (through the proxy) and Node (captured) verify the certificate the gateway mints for an
    inspected host with no flag of their own."""
    g, run, up, state = launcher
    status, body = g.api("GET", "/v1/ca")
    assert status == 200, body
    ca = body["certificate"]
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    roots = "/etc/ssl/certs/ca-certificates.crt"
    roots = open(roots).read().strip() + "\n" if os.path.exists(roots) else ""

    r = run("sbi", "sh", "-c", "env; echo ---; cat \"$SSL_CERT_FILE\"")
    assert r.returncode == 0, r.stderr
    env_text, bundle = r.stdout.decode().split("---\n", 1)
    env = dict(l.split("=", 1) for l in env_text.splitlines() if "=" in l)
    paths = {env.get(v) for v in CA_VARIABLES}
    assert len(paths) == 1 and None not in paths, {v: env.get(v) for v in CA_VARIABLES}
    path = paths.pop()
    assert path.startswith(os.path.join(state, "netns", "al-ns-")), path
    assert bundle == roots + ca.strip() + "\n", "the bundle is the system roots and the CA"
    assert not os.path.exists(path) and os.listdir(os.path.join(state, "netns")) == [], \
        "the bundle goes with the sandbox"
    assert b"CA" not in r.stderr, r.stderr  # nothing to say: the gateway gave its CA

    # Inspected TLS: the gateway presents a certificate from its CA; clients verify it.
    api = up["api"]
    n = len(api.requests)
    r = run("sbi", "curl", "-sS", "--max-time", "10", "https://api.test:8443/curl")
    assert (r.returncode, r.stdout) == (0, b"hello GET /curl"), r.stderr
    r = run("sbi", "/usr/bin/python3", "-c",
            "import requests; print(requests.get('https://api.test:8443/py', timeout=10).text,"
            " end='')")
    assert (r.returncode, r.stdout) == (0, b"hello GET /py"), r.stderr
    r = run("sbi", "node", "-e",
            "require('https').get('https://api.test:8443/node', r => r.pipe(process.stdout))"
            ".on('error', e => { console.error(e.message); process.exit(3); })")
    assert (r.returncode, r.stdout) == (0, b"hello GET /node"), r.stderr
    assert [(x.target, x.sni) for x in api.requests[n:]] == [
        ("/curl", "api.test"), ("/py", "api.test"), ("/node", "api.test")]
    # Node ignores the proxy variables: its connection was captured by nftables and inspected.
    captured = [r for r in g.records() if r.get("event") == "connection.open" and
                r.get("host") == "api.test" and "original_ip" in r]
    assert captured and all(r["tls"] == "inspected" and r["decision"] == "allow"
                            for r in captured), captured
    assert any(r.get("event") == "http.request" and r.get("path") == "/node" and
               r.get("tls") == "inspected" for r in g.records())
    # Without the variables, the system roots alone do not trust the gateway's certificate.
    r = run("sbi", "sh", "-c", "unset " + " ".join(CA_VARIABLES) +
            "; curl -sS --max-time 10 https://api.test:8443/untrusted")
    assert r.returncode == 60, (r.returncode, r.stderr)
    # A variable the user sets explicitly is left alone.
    r = run("sbi", "sh", "-c", "echo $CURL_CA_BUNDLE $SSL_CERT_FILE",
            env=("CURL_CA_BUNDLE=/mine.pem",))
    mine, theirs = r.stdout.decode().split()
    assert mine == "/mine.pem" and theirs.endswith("/ca.crt"), r.stdout
    assert leftovers(g, state) == {"netns": [], "links": [], "nft": False, "sessions": [],
                                   "leases": False}


def test_two_concurrent_sandboxes_with_different_policies(launcher):
    g, run, up, state = launcher
    import concurrent.futures
    script = "sleep 1; curl -s -o /dev/null -w '%{http_code}' http://web.test:8080/c"
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a = ex.submit(run, "sb", "sh", "-c", script)
        b = ex.submit(run, "sb2", "sh", "-c", script)
        assert a.result().stdout == b"200"
        assert b.result().stdout == b"403"
    assert leftovers(g, state)["netns"] == []


def test_tap_links_get_the_same_rules(sandbox):
    """A microVM's tap link, registered like a veth: frames written into the tap (as a guest
    would) reach the gateway only from the link's own address; spoofed sources and UDP beyond
    DNS go nowhere, and the firewall's counters show the drops."""
    import fcntl
    import struct
    sb, g, up = sandbox
    tap = f"altap{random.randrange(100000)}"
    subprocess.run([VMLAUNCH_BIN, "net", "add-tap", tap, "100.98.0.1"], check=True)
    fd = None
    try:
        subprocess.run([VMLAUNCH_BIN, "net", "add-link", tap, "100.98.0.2"], check=True)
        g.session("sb", source="100.98.0.2")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tap.encode(), 0x0002 | 0x1000))
        mac = bytes.fromhex(open(f"/sys/class/net/{tap}/address").read().strip().replace(":", ""))

        def frame(src, dst, dport, payload):
            udp = struct.pack(">HHHH", 40000, dport, 8 + len(payload), 0) + payload
            hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                              socket.inet_aton(src), socket.inet_aton(dst))
            s = sum(struct.unpack(">10H", hdr))
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            hdr = hdr[:10] + struct.pack(">H", ~s & 0xFFFF) + hdr[12:]
            return mac + bytes.fromhex("020000000002") + b"\x08\x00" + hdr + udp

        def dns_query(name):
            q = struct.pack(">HHHHHH", 9, 0x0100, 1, 0, 0, 0)
            for label in name.split("."):
                q += bytes([len(label)]) + label.encode()
            return q + b"\x00" + struct.pack(">HH", 1, 1)

        with Canaries(["10.77.0.4"], [5354]) as leak:
            # The guest's own address reaches the gateway. The first frames into a new tap can
            # be lost while the link settles: send until the query is recorded (deadline).
            deadline = time.time() + 10
            while not any(r.get("name") == "web.test" for r in g.records()):
                assert time.time() < deadline, "the guest's own address never reached the gateway"
                os.write(fd, frame("100.98.0.2", "100.98.0.1", 53, dns_query("web.test")))
                g.records(lambda x: any(r.get("name") == "web.test" for r in x), timeout=0.5)
            os.write(fd, frame("100.98.0.9", "100.98.0.1", 53, dns_query("spoofed.test")))
            os.write(fd, frame("100.98.0.2", "10.77.0.4", 5354, b"leak"))
            # The synchronisation point: a last query from the guest's own address, written
            # after the others into the same tap; once the gateway has recorded it, the frames
            # before it have been dealt with.
            os.write(fd, frame("100.98.0.2", "100.98.0.1", 53, dns_query("sync.tap.test")))
            recs = g.records(lambda x: any(r.get("name") == "sync.tap.test" for r in x),
                             timeout=10)
            assert leak.new_hits(0) == [], "UDP left the tap"
        queries = {(r["src"], r["name"]) for r in recs if r["event"] == "dns.query"}
        assert ("100.98.0.2", "sync.tap.test") in queries, queries
        assert ("100.98.0.2", "web.test") in queries, "the guest's own address reaches the gateway"
        assert all(name != "spoofed.test" for _, name in queries)
        guard = subprocess.run(["nft", "list", "chain", "inet", "airlock", "guard"],
                               capture_output=True, text=True).stdout
        spoof_line = [l for l in guard.splitlines() if "!= @links" in l][0]
        assert "counter packets 0 " not in spoof_line, spoof_line
    finally:
        if fd is not None:
            os.close(fd)
        subprocess.run([VMLAUNCH_BIN, "net", "remove-link", tap, "100.98.0.2"], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "del-link", tap], capture_output=True)


def test_a_placeholder_in_a_captured_tls_sni_is_blocked(tmp_path, dns, upstreams):
    """A tool that ignores the proxy puts a placeholder in its TLS server name (DNS-free
    exfiltration through the ClientHello): the captured connection is refused before any dial,
    and the record names the credential and `sni`, never the value."""
    dns.set("tls.test", [("A", "10.77.0.3", 60)])
    secret = tmp_path / "token"
    secret.write_text("ghs_" + os.urandom(20).hex() + "\n")
    policy = SANDBOX_POLICY.replace(
        "egress:\n", "egress:\n  - {id: api, hosts: [api.tls.test], inspect: true, "
        "credentials: [github]}\n")
    g = Gateway(str(tmp_path), dns, policies={"sb": policy}, extra_config=f"""credentials:
  github:
    source: static
    file: {secret}
    placeholder: {{env: GITHUB_TOKEN, prefix: ghp_}}
    inject: [{{header: Authorization, value: "Bearer {{token}}"}}]
""")
    g.serve_links(proxy=False)
    sb = None
    try:
        ph = g.session("sb", source="100.96.0.2")["placeholders"]["GITHUB_TOKEN"]
        sb = Sandbox()
        n = len(upstreams["tls"].snis)
        sb.run("openssl", "s_client", "-connect", "10.77.0.3:8443", "-servername",
               f"{ph[4:]}.tls.test", input=b"")
        rec = g.records(lambda x: any(y["event"] == "credential.leak_blocked" for y in x))
        leaks = [x for x in rec if x["event"] == "credential.leak_blocked"]
        assert leaks and leaks[0]["where"] == "sni" and leaks[0]["credential"] == "github", rec
        assert upstreams["tls"].snis[n:] == [], "the connection was dialled"
        assert ph[4:] not in open(g.audit).read()
    finally:
        if sb:
            sb.close()
        g.stop()
