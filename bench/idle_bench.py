"""Idle memory: the gateway's resident memory per idle connection, beside haproxy holding the
same connections (issue 14). Run by bench/run_idle_bench.sh in a network namespace of its own.

Two kinds, N of each (argv[1], default 10000), opened one kind at a time and held open while
RSS (VmRSS, all threads) is read:
- tunnels: CONNECT to a `tcp` rule, answered 200, the upstream's connection accepted, then
  silence (airlock splices these: two sockets each, pipes only while bytes move). The peer is haproxy in
  TCP mode forwarding to the same upstream.
- inspected: CONNECT to an `inspect: true` rule, the TLS handshake with the gateway's CA, one
  GET answered by the upstream over TLS, then silence on a kept-alive connection. The peer is
  haproxy terminating TLS and re-encrypting to the same upstream (one request each as well).
Reports (RSS with N open - RSS before) / N for each, and the ratio to haproxy's."""
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading

SRC = os.environ["AIRLOCK_SOURCE"]
BUILD = os.environ["AIRLOCK_BUILD"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
HOST = "idle.example.test"
UPSTREAM_IP = "127.0.0.2"

sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from dnsstub import DnsStub  # noqa: E402
from bench_harness import (  # noqa: E402
    fail, in_own_namespaces, make_upstream_pki, run_bench, start, start_inspecting_airlock,
    wait_port, write)


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    fail("no VmRSS")


def hold_tcp_upstream(port):
    """Accepts and holds connections on UPSTREAM_IP:port, saying nothing (a thread)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((UPSTREAM_IP, port))
    srv.listen(4096)
    held = []

    def loop():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return
    threading.Thread(target=loop, daemon=True).start()
    return held


def start_tls_upstream(pki):
    cfg = write("upstream.cfg", f"""global
  maxconn {N + 500}
  nbthread 1
defaults
  mode http
  timeout client 600s
  timeout server 600s
  timeout connect 5s
  timeout http-keep-alive 600s
frontend fe
  bind {UPSTREAM_IP}:443 ssl crt {pki['upstream_pem']}
  http-request return status 200 content-type text/plain string ok
""")
    p = start(["haproxy", "-f", cfg], log="upstream.log")
    wait_port(443, UPSTREAM_IP, proc=p)


def start_haproxy_peer(pki):
    """haproxy as the peer: TCP mode on :7000 to the tunnel upstream, TLS on :7443 re-encrypted
    to the TLS upstream."""
    cfg = write("peer.cfg", f"""global
  maxconn {N + 500}
  nbthread 1
defaults
  timeout client 600s
  timeout server 600s
  timeout connect 5s
  timeout http-keep-alive 600s
frontend tunnels
  mode tcp
  bind 127.0.0.1:7000
  default_backend raw
backend raw
  mode tcp
  server up {UPSTREAM_IP}:9000
frontend inspected
  mode http
  bind 127.0.0.1:7443 ssl crt {pki['upstream_pem']}
  default_backend tls
backend tls
  mode http
  http-reuse never
  server up {UPSTREAM_IP}:443 ssl verify required ca-file {pki['ca']} sni str({HOST})
""")
    p = start(["haproxy", "-f", cfg], log="peer.log", cpu="0")
    wait_port(7000, proc=p)
    wait_port(7443, proc=p)
    return p


def open_tunnel(proxy):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=30)
    if proxy == 3128:
        s.sendall(f"CONNECT {HOST}:9000 HTTP/1.1\r\nHost: {HOST}:9000\r\n\r\n".encode())
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            fail("CONNECT refused")
    return s


def open_inspected(proxy, ctx):
    raw = socket.create_connection(("127.0.0.1", proxy), timeout=30)
    if proxy == 3128:
        raw.sendall(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n".encode())
        if not raw.recv(4096).startswith(b"HTTP/1.1 200"):
            fail("CONNECT refused")
    t = ctx.wrap_socket(raw, server_hostname=HOST)
    t.sendall(f"GET /bench/idle HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head or not head.endswith(b"ok"):
        d = t.recv(4096)
        if not d:
            fail("the inspected connection closed")
        head += d
    if not head.startswith(b"HTTP/1.1 200"):
        fail(f"inspected request: {head[:100]!r}")
    return t


def per_connection(pid, opener):
    """Opens N with opener(), returns (RSS growth per connection, the sockets)."""
    before = rss(pid)
    socks = []
    for _ in range(N):
        socks.append(opener())
    grown = rss(pid) - before
    return grown / N, socks


def main():
    if not in_own_namespaces():
        fail("run me through bench/run_idle_bench.sh (a network and mount namespace of my own)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An idle tunnel holds 2 descriptors in the gateway and in haproxy, and this process holds
    # both ends of each (the client's and the upstream's).
    if hard < 2 * N + 1000:
        fail(f"the hard open-file limit ({hard}) is too low for {N} tunnels (2 descriptors each "
             f"here and in the proxy): at most {(hard - 1000) // 2} here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hosts = write("hosts", f"127.0.0.1 localhost\n{UPSTREAM_IP} {HOST}\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    dns = DnsStub("127.0.0.53", 53)
    dns.set(HOST, [("A", UPSTREAM_IP, 3600)])
    pki = make_upstream_pki(HOST)
    held = hold_tcp_upstream(9000)
    start_tls_upstream(pki)
    gateway, _, gateway_ca = start_inspecting_airlock(pki, [HOST], f"{UPSTREAM_IP}/32", BUILD,
                                                      tcp_ports=[9000])
    peer = start_haproxy_peer(pki)
    to_gateway = ssl.create_default_context(cafile=gateway_ca)
    to_peer = ssl.create_default_context(cafile=pki["ca"])
    rows = []
    for kind, opener_for in (("idle tunnels", lambda port, _: lambda: open_tunnel(port)),
                             ("idle inspected", lambda port, ctx: lambda: open_inspected(port, ctx))):
        result = {}
        for name, proc, port, ctx in (("airlock", gateway, 3128, to_gateway),
                                      ("haproxy", peer, 7000 if kind == "idle tunnels" else 7443,
                                       to_peer)):
            each, socks = per_connection(proc.pid, opener_for(port, ctx))
            result[name] = each
            for s in socks:
                s.close()
            for s in held:
                s.close()
            held.clear()
        rows.append((kind, result["airlock"], result["haproxy"]))
    print(f"\nResident memory per idle connection, {N} open at once (VmRSS growth / {N}):\n")
    print(f"{'':<16} {'airlock KiB':>12} {'haproxy KiB':>12} {'ratio':>7}")
    for kind, a, h in rows:
        print(f"{kind:<16} {a / 1024:>12.1f} {h / 1024:>12.1f} {a / h if h else 0:>6.2f}x")


if __name__ == "__main__":
    run_bench(main)
