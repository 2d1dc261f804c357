"""Runs inside the TLS bench namespace (see run_tls_bench.sh). Upstream: haproxy serving a 1 KiB
body over HTTPS/1.1 on 127.0.0.2:443 with a leaf from a throw-away test CA. Through airlock (a rule
with `inspect: true`), mitmproxy (mitmdump, regular proxy mode, its own CA), squid with ssl-bump
(as configured by default, and again without upstream connection reuse), and directly against the
upstream, hey (a Go load generator that speaks CONNECT to an HTTP proxy) measures:
  - inspected HTTPS with keep-alive: req/s, p50/p99 latency, the proxy's CPU per request;
  - new TLS handshakes: a fresh connection, CONNECT, TLS handshake and one request each.
Every proxy first serves one request to curl, which verifies the certificate against that proxy's
CA (so it really is inspecting), and one more after the load. The proxy runs on CPU 0; hey, the
upstream and this script on CPU 1. The proxy's CPU time (all its threads and helper processes)
comes from /proc; hey's from its rusage; the upstream's from /proc, and its connection count from
its stats socket. Results are printed as tables with ratios.

Environment: AIRLOCK_BENCH_ONLY=airlock,squid (those targets only), AIRLOCK_BENCH_CONNECTIONS=N
(default 16), AIRLOCK_BENCH_VERBOSE=1 (a line per run), AIRLOCK_BENCH_PERF=DIR (perf profiles of
the proxy, one per run, into DIR; the figures are then not comparable)."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

SRC = os.environ["AIRLOCK_SOURCE"]
BUILD = os.environ["AIRLOCK_BUILD"]
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(os.environ.get("AIRLOCK_BENCH_CONNECTIONS", "16"))
WARMUP_SECONDS = 1
ROUNDS = 5  # each run is split into this many rounds, interleaved across the targets
HOST = "bench.example.test"
UPSTREAM_IP = "127.0.0.2"
PATH = "/bench/1k"
BODY_BYTES = 1024
URL = f"https://{HOST}{PATH}"
ONLY = [t for t in os.environ.get("AIRLOCK_BENCH_ONLY", "").split(",") if t]
PERF_DIR = os.environ.get("AIRLOCK_BENCH_PERF", "")
VERBOSE = bool(os.environ.get("AIRLOCK_BENCH_VERBOSE"))

sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from dnsstub import DnsStub  # noqa: E402  (the integration tests' stub: A records from a table)
from bench_harness import (  # noqa: E402  (the process harness all namespaced benches share)
    CLIENT_CPU, HZ, PROXY_CPU, TMP, TWO_CPUS, fail, in_own_namespaces, make_ca,
    make_upstream_pki, median, parse_hey, per_request, pinned, procs, run_bench, start,
    start_inspecting_airlock, start_perf, stop_perf, wait_port, write)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def cpu_seconds(pid):
    """utime + stime of `pid` (all its threads) and of its live children (squid's helpers)."""
    total = 0.0
    for p in [pid] + children(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / HZ
        except OSError:
            pass
    return total


def rss_mib(pid):
    total = 0
    for p in [pid] + children(pid):
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", open(f"/proc/{p}/status").read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


# --- the throw-away PKI ----------------------------------------------------------------------

def make_pki():
    pki = make_upstream_pki(HOST)
    # squid's signing CA (mitmproxy makes its own; airlock generates one in its state_dir)
    bump_cert, bump_key = make_ca("squid-ca", "Airlock bench squid ssl-bump CA")
    bump_pem = os.path.join(TMP, "pki", "squid-ca.pem")
    with open(bump_pem, "w") as f:
        f.write(open(bump_cert).read() + open(bump_key).read())
    for name in os.listdir(os.path.join(TMP, "pki")):
        os.chmod(os.path.join(TMP, "pki", name), 0o644)  # squid's helpers run as 'proxy'
    return dict(pki, squid_ca=bump_cert, squid_pem=bump_pem)


# --- the upstream and the proxies --------------------------------------------------------------

def start_upstream(pki):
    body = write("www/1k.bin", ("airlock-bench-1k" * (BODY_BYTES // 16))[:BODY_BYTES])
    cfg = write("upstream.cfg", f"""global
  maxconn 4000
  nbthread 1
  stats socket {TMP}/haproxy.sock mode 600
defaults
  mode http
  timeout client 30s
  timeout server 30s
  timeout connect 5s
frontend fe
  bind {UPSTREAM_IP}:443 ssl crt {pki['upstream_pem']} alpn http/1.1
  http-request return status 200 content-type application/octet-stream file {body}
""")
    p = start(["haproxy", "-f", cfg], log="upstream.log")
    wait_port(443, UPSTREAM_IP, proc=p)
    return p


def start_airlock(pki):
    return start_inspecting_airlock(pki, [HOST], f"{UPSTREAM_IP}/32", BUILD)


def start_mitmproxy(pki):
    conf = os.path.join(TMP, "mitmproxy")
    os.makedirs(conf, exist_ok=True)
    p = start(["mitmdump", "-q", "--listen-host", "127.0.0.1", "--listen-port", "3130",
               "--set", f"confdir={conf}",
               "--set", f"ssl_verify_upstream_trusted_ca={pki['ca']}",
               "--set", "flow_detail=0", "--set", "termlog_verbosity=error"],
              cpu=PROXY_CPU, log="mitmproxy.log")
    wait_port(3130, proc=p)
    return p, 3130, os.path.join(conf, "mitmproxy-ca-cert.pem")


def start_squid(pki, name="squid", port=3129, reuse_upstream=True):
    """squid 5 with ssl-bump. By default it keeps idle upstream connections and reuses them for
    later bumped connections; with reuse_upstream=False every client connection gets its own
    upstream connection and TLS handshake, as in airlock and mitmproxy."""
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    db = os.path.join(d, "ssl_db")
    subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", db, "-M", "4MB"],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["chown", "-R", "proxy:proxy", d], check=True)
    hosts = write(f"{name}/hosts", f"127.0.0.1 localhost\n{UPSTREAM_IP} {HOST}\n")
    cfg = write(f"{name}/squid.conf", f"""http_port 127.0.0.1:{port} ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert={pki['squid_pem']}
sslcrtd_program /usr/lib/squid/security_file_certgen -s {db} -M 4MB
sslcrtd_children 5 startup=1 idle=1
ssl_bump bump all
tls_outgoing_options cafile={pki['ca']}
http_access allow all
cache deny all
access_log none
cache_store_log none
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
hosts_file {hosts}
dns_nameservers 127.0.0.53
workers 1
max_filedescriptors 16384
shutdown_lifetime 1 seconds
server_persistent_connections {'on' if reuse_upstream else 'off'}
""")
    p = start(["squid", "-N", "-f", cfg], cpu=PROXY_CPU, log=f"{name}/stdout.log")
    wait_port(port, proc=p)
    return p, port, pki["squid_ca"]


def start_squid_no_reuse(pki):
    return start_squid(pki, "squid-nopool", 3131, reuse_upstream=False)


# --- measuring ---------------------------------------------------------------------------------

def check_once(port, ca):
    """One request with curl verifying the proxy's certificate against its CA: the proxy really
    inspects, and the body arrives whole."""
    args = ["curl", "-sS", "--max-time", "10", "--cacert", ca, "-o", "/dev/null",
            "-w", "%{http_code} %{size_download}", URL]
    if port:
        args[1:1] = ["--proxy", f"http://127.0.0.1:{port}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if r.stdout.strip() != f"200 {BODY_BYTES}":
        fail(f"check through port {port}: {r.stdout!r} {r.stderr.strip()!r}")


def hey(port, seconds, keepalive):
    args = ["hey", "-z", f"{seconds}s", "-c", str(CONNECTIONS), "-cpus", "1", "-t", "10"]
    if port:
        args += ["-x", f"http://127.0.0.1:{port}"]
    if not keepalive:
        args.append("-disable-keepalive")
    out_path = os.path.join(TMP, "hey.out")
    with open(out_path, "w") as out:
        p = subprocess.Popen(pinned(args + [URL], CLIENT_CPU), stdout=out,
                             stderr=subprocess.STDOUT)
        procs.append(p)
        deadline = time.time() + seconds + 60
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)  # its rusage: hey's own CPU time
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
                break
            if time.time() > deadline:
                p.kill()
                fail("hey did not finish")
            time.sleep(0.05)
    h = parse_hey(open(out_path).read())
    return {
        "ok": h["ok"],
        "seconds": h["seconds"],
        "rps": h["rps"],
        "lat": h["lat"],
        "non200": sum(h["other"].values()),
        "errors": sum(n for n, _ in h["errors"]),
        "error_kinds": h["errors"][:3],
        "size_ok": h["size"] == BODY_BYTES,
        "client_cpu": ru.ru_utime + ru.ru_stime,
    }


def upstream_counters():
    """haproxy's cumulative connection counters ('show info' on its stats socket): how many
    connections and TLS handshakes (full, and resumed) the upstream has seen."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(os.path.join(TMP, "haproxy.sock"))
        s.sendall(b"show info\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    info = dict(line.split(": ", 1) for line in data.decode().splitlines() if ": " in line)
    return {k: int(info.get(k, 0)) for k in ("CumConns", "CumSslConns", "SslFrontendKeyRate")}


def run(kind, proc, port, upstream, keepalive, seconds, tag):
    """One hey run against `port` (None: the upstream directly), with the CPU time the proxy, hey
    and the upstream spent on it and the upstream connections it caused."""
    perf = None
    if PERF_DIR and proc:
        perf = start_perf(proc.pid, os.path.join(
            PERF_DIR, f"{kind}-{'keepalive' if keepalive else 'handshakes'}-{tag}.data"))
    before = cpu_seconds(proc.pid) if proc else 0.0
    up_before = cpu_seconds(upstream.pid)
    counters = upstream_counters()
    r = hey(port, seconds, keepalive)
    r["proxy_cpu"] = (cpu_seconds(proc.pid) - before) if proc else 0.0
    r["upstream_cpu"] = cpu_seconds(upstream.pid) - up_before
    r["upstream_conns"] = upstream_counters()["CumConns"] - counters["CumConns"]
    stop_perf(perf)
    if VERBOSE:
        print(f"  {kind} {'keep-alive' if keepalive else 'handshakes'} round {tag}: "
              f"{r['rps']:.0f}/s, {r['ok']} ok, {r['errors'] + r['non200']} errors, proxy CPU "
              f"{r['proxy_cpu']:.2f} s, hey CPU {r['client_cpu']:.2f} s, upstream CPU "
              f"{r['upstream_cpu']:.2f} s, {r['upstream_conns']} upstream connections" +
              (f", RSS {rss_mib(proc.pid):.0f} MiB" if proc else ""), flush=True)
    return r


def combine(runs, proxied):
    """One figure from the rounds of a target and mode: each the median of the rounds' (robust
    to a round that a slow spell of the shared machine hit); counts summed."""
    c = {k: sum(r[k] for r in runs) for k in ("ok", "non200", "errors", "upstream_conns")}
    c["rps_rounds"] = [r["rps"] for r in runs]
    c["rps"] = median(c["rps_rounds"])
    c["lat"] = {q: median([r["lat"].get(q, 0.0) for r in runs]) for q in ("50", "99")}
    c["error_kinds"] = [e for r in runs for e in r["error_kinds"]][:3]
    c["size_ok"] = all(r["size_ok"] for r in runs)
    c["cpu_us"] = median([per_request(r, "proxy_cpu") for r in runs]) if proxied else 0.0
    c["client_us"] = median([per_request(r, "client_cpu") for r in runs])
    c["upstream_us"] = median([per_request(r, "upstream_cpu") for r in runs])
    # CPU 1 (hey + upstream) busy share: near 100% means the client side was the limit.
    c["cpu1_busy"] = median([(r["client_cpu"] + r["upstream_cpu"]) / r["seconds"] for r in runs])
    c["cpu0_busy"] = median([r["proxy_cpu"] / r["seconds"] for r in runs])
    return c


def measure_all(targets, pki, upstream):
    """Starts every target, checks and warms each, then measures them in ROUNDS rounds, each
    target and mode once per round for SECONDS / ROUNDS: a slow spell of the machine is shared
    by all rather than landing on one. Then checks each again and stops it."""
    started = []
    for name, starter, modes in targets:
        print(f"starting {name} ...", flush=True)
        proc, port, ca = (None, None, pki["ca"]) if starter is None else starter(pki)
        check_once(port, ca)
        hey(port, WARMUP_SECONDS, keepalive=True)
        row = {"name": name, "ka": None, "hs": None, "runs": {m: [] for m in modes}}
        if proc:
            row["rss_start"] = rss_mib(proc.pid)
        started.append((row, proc, port, ca, modes))
    seconds = SECONDS / ROUNDS
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1} of {ROUNDS} ...", flush=True)
        for row, proc, port, ca, modes in started:
            for mode in modes:
                row["runs"][mode].append(run(row["name"], proc, port, upstream, mode == "ka",
                                             seconds, rnd + 1))
    rows = []
    for row, proc, port, ca, modes in started:
        for mode in modes:
            row[mode] = combine(row["runs"][mode], proc is not None)
        if proc:
            row["rss_end"] = rss_mib(proc.pid)
            check_once(port, ca)  # still answering after the load
            if proc.poll() is not None:
                fail(f"{row['name']} exited with {proc.returncode} during the run")
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "killed after 20 s"
            row["exit"] = rc
        rows.append(row)
    return rows


def ms(v):
    return f"{v * 1000:.1f} ms" if v >= 0.001 else f"{v * 1e6:.0f} µs"


def cells(r, proxied):
    """The main table's cells for one run (keep-alive or handshakes), '-' where not measured."""
    if r is None:
        return ["-"] * 6
    return [f"{r['rps']:.0f}", ms(r["lat"].get("50", 0)), ms(r["lat"].get("99", 0)),
            f"{r['cpu_us']:.1f}" if proxied else "-", f"{r['cpu0_busy'] * 100:.0f}%",
            f"{r['cpu1_busy'] * 100:.0f}%"]


def report(rows):
    print(f"\nTLS inspection side by side: {SECONDS}s per target and mode in {ROUNDS} interleaved "
          f"rounds (figures: medians of the rounds), hey with {CONNECTIONS} "
          f"connections, 1 KiB HTTPS/1.1 responses from haproxy; proxies pinned to CPU "
          f"{PROXY_CPU if TWO_CPUS else '(unpinned)'}, hey and the upstream to CPU "
          f"{CLIENT_CPU if TWO_CPUS else '(unpinned)'}.")
    for mode, title in (("ka", "Inspected HTTPS, keep-alive (req/s)"),
                        ("hs", "New connections: CONNECT + TLS handshake + 1 request each "
                               "(handshakes/s)")):
        print(f"\n{title}")
        print(f"{'':<13} {'rate':>8} {'p50':>9} {'p99':>9} {'CPU µs/req':>10} {'CPU0':>5} "
              f"{'CPU1':>5} {'hey µs':>7} {'upstr µs':>8} {'upstr conn/req':>14} {'errors':>6} "
              f"{'rounds (rate)':>22}")
        for r in rows:
            m = r[mode]
            if m is None:
                print(f"{r['name']:<13} {'(not run)':>8}")
                continue
            c = cells(m, r["name"] != "direct")
            print(f"{r['name']:<13} {c[0]:>8} {c[1]:>9} {c[2]:>9} {c[3]:>10} {c[4]:>5} "
                  f"{c[5]:>5} {m['client_us']:>7.1f} {m['upstream_us']:>8.1f} "
                  f"{m['upstream_conns'] / max(1, m['ok']):>14.3f} "
                  f"{m['errors'] + m['non200']:>6} "
                  f"{'/'.join(f'{x:.0f}' for x in m['rps_rounds']):>22}")
    print("\nCPU0: the proxy's CPU time over the run (100% = one core); CPU1: hey + upstream "
          "(near 100%: the client side was the limit). hey µs / upstr µs: their CPU per request.")
    for r in rows:
        if "rss_start" in r:
            print(f"  {r['name']}: RSS {r['rss_start']:.0f} MiB after warm-up, "
                  f"{r['rss_end']:.0f} MiB after the runs; exit status after SIGTERM: "
                  f"{r.get('exit')}")
        for mode in ("ka", "hs"):
            if r[mode] and r[mode]["error_kinds"]:
                print(f"  {r['name']} {mode} errors: {r[mode]['error_kinds']}")
            if r[mode] and not r[mode]["size_ok"]:
                print(f"  {r['name']} {mode}: responses were not {BODY_BYTES} bytes")
    by = {r["name"]: r for r in rows}
    a = by.get("airlock")
    if not a:
        return
    print("\nRatios, airlock / peer, each the median of the per-round ratios (airlock and the peer "
          "measured back to back in each round); CPU: the peer's proxy CPU per request / "
          "airlock's:")
    ratios = {}
    for peer in ("mitmproxy", "squid", "squid-nopool", "direct"):
        p = by.get(peer)
        if not p:
            continue
        parts = []
        for mode, what in (("ka", "req/s"), ("hs", "handshakes/s")):
            ra, rp = a["runs"].get(mode), p["runs"].get(mode)
            if not ra or not rp:
                continue
            pairs = list(zip(ra, rp))
            ratios[peer, mode] = median([x["rps"] / y["rps"] for x, y in pairs if y["rps"]])
            parts.append(f"{what} {ratios[peer, mode]:.2f}x")
            if peer != "direct":
                cpu = median([per_request(y, "proxy_cpu") / per_request(x, "proxy_cpu")
                              for x, y in pairs if per_request(x, "proxy_cpu")])
                parts.append(f"CPU/{'req' if mode == 'ka' else 'handshake'} {cpu:.2f}x")
        print(f"  vs {peer:<13} " + ", ".join(parts))
    for peer, target in (("mitmproxy", 50), ("squid", 3)):
        if (peer, "ka") in ratios:
            got = ratios[peer, "ka"]
            print(f"  target >= {target}x {peer} on inspected req/s: "
                  f"{'met' if got >= target else 'NOT met'} ({got:.2f}x)")
    recs = os.path.join(TMP, "airlock", "audit", "audit.jsonl")
    if os.path.exists(recs):
        n = sum(1 for line in open(recs, errors="replace") if '"http.request"' in line)
        print(f"\nairlock wrote {n} http.request audit records (every inspected request is one).")
    log = os.path.join(TMP, "airlock", "gateway.log")
    if os.path.exists(log):
        bad = [line.rstrip() for line in open(log, errors="replace")
               if re.search(r"\b(error|warn|warning|critical)\b", line, re.I)]
        print(f"airlock's log: {len(bad)} warning or error lines" +
              "".join(f"\n    {line[:200]}" for line in bad[:5]))


def main():
    if not in_own_namespaces():
        fail("run me through bench/run_tls_bench.sh (a network and mount namespace of my own)")
    if TWO_CPUS:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    # Names: hey (direct), curl and mitmproxy resolve through /etc/hosts, squid through its
    # hosts_file, airlock through the DNS stub (it never reads /etc/hosts).
    hosts = write("hosts", f"127.0.0.1 localhost\n{UPSTREAM_IP} {HOST}\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    for k, v in (("net.ipv4.ip_local_port_range", "1024 65000"),):
        subprocess.run(["sysctl", "-qw", f"{k}={v}"], check=False)
    dns = DnsStub("127.0.0.53", 53)
    dns.set(HOST, [("A", UPSTREAM_IP, 3600)])
    pki = make_pki()
    upstream = start_upstream(pki)
    # squid-nopool: handshakes only (without reuse squid also closes the upstream connection
    # after every request, so its keep-alive figure would measure handshakes too).
    targets = [(name, starter, modes) for name, starter, modes in (
        ("direct", None, ("ka", "hs")),
        ("airlock", start_airlock, ("ka", "hs")),
        ("mitmproxy", start_mitmproxy, ("ka", "hs")),
        ("squid", start_squid, ("ka", "hs")),
        ("squid-nopool", start_squid_no_reuse, ("hs",))) if not ONLY or name in ONLY]
    rows = measure_all(targets, pki, upstream)
    report(rows)


run_bench(main)
