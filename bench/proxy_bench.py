"""Runs inside the bench namespace (see run_proxy_bench.sh). Upstream: haproxy answering 200 from
memory on 127.0.0.2:8080, and a socat sink on 127.0.0.2:9000 for tunnels. For each proxy and for
a direct baseline: plain HTTP forwarding with keep-alive (wrk, 16 connections), connection churn
(wrk with Connection: close), and CONNECT bulk throughput (2 GiB through socat). The proxy's CPU
time is read from /proc. Results are printed as a table with ratios.

Pinning (on a machine with two CPUs or more): every proxy runs on CPU 0; wrk, the bulk client,
the upstream and the sink on CPU 1, so that the proxy's core measures the proxy rather than
its contention with the load. airlock runs twice, with 1 and with 2 workers (both on CPU 0).
haproxy in TCP mode (a port forwarding to the sink, no CONNECT) is the tunnel peer: it is
measured for bulk throughput only."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ["AIRLOCK_SOURCE"]
BUILD = os.environ["AIRLOCK_BUILD"]
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
PROFILE_DIR = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--profile" else None
TMP = tempfile.mkdtemp(prefix="airlock-bench-")
os.chmod(TMP, 0o777)
UPSTREAM = "127.0.0.2:8080"
BULK_BYTES = 2 << 30

procs = []
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2
# BENCH_PROXY_CPU=1 puts the proxies on the load's CPU: a check of what crossing cores costs.
PROXY_CPU, LOAD_CPU = os.environ.get("BENCH_PROXY_CPU", "0"), "1"


def pinned(args, cpu):
    return ["taskset", "-c", cpu] + args if TWO_CPUS else args


def start(args, cpu=PROXY_CPU, **kw):
    p = subprocess.Popen(pinned(args, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         **kw)
    procs.append(p)
    return p


def wait_port(port, host="127.0.0.1", timeout=10):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def cpu_seconds(pid):
    total = 0.0
    for p in [pid] + children(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_upstreams():
    cfg = write("upstream.cfg", f"""global
  maxconn 4000
defaults
  mode http
  timeout client 30s
  timeout server 30s
  timeout connect 5s
frontend fe
  bind {UPSTREAM}
  http-request return status 200 content-type text/plain string "hello from upstream"
""")
    start(["haproxy", "-f", cfg], cpu=LOAD_CPU)
    start(["socat", "-u", "TCP-LISTEN:9000,bind=127.0.0.2,reuseaddr,fork", "OPEN:/dev/null"],
          cpu=LOAD_CPU)
    wait_port(8080, "127.0.0.2")
    wait_port(9000, "127.0.0.2")


def start_airlock(workers=1):
    policies = os.path.join(TMP, "policies")
    os.makedirs(policies, exist_ok=True)
    write("policies/bench.yaml", """version: v1
name: bench
private:
  - {id: upstream, cidr: 127.0.0.2/32, ports: [8080, 9000]}
""")
    cfg = write(f"airlock-{workers}.yaml", f"""listen:
  proxy: 127.0.0.1:{3127 + workers}
  control: {TMP}/control-{workers}.sock
workers: {workers}
state_dir: {TMP}/state-{workers}
policy_dir: {policies}
audit:
  path: {TMP}/audit-{workers}/audit.jsonl
  rotate_bytes: 1073741824
""")
    p = start([os.path.join(BUILD, "gateway", "airlock-gateway"), "--config", cfg])
    wait_port(3127 + workers)
    subprocess.run(["curl", "-s", "--unix-socket", f"{TMP}/control-{workers}.sock", "-X", "POST",
                    "-d", '{"policy":"bench","source":"127.0.0.1","token":false,'
                          '"ttl_seconds":86400}', "http://x/v1/sessions"], check=True,
                   capture_output=True)
    return p


def start_squid():
    os.makedirs(os.path.join(TMP, "squid"), exist_ok=True)
    os.chmod(os.path.join(TMP, "squid"), 0o777)
    cfg = write("squid.conf", f"""http_port 127.0.0.1:3130
http_access allow all
acl CONNECT method CONNECT
cache deny all
access_log none
cache_store_log none
cache_log {TMP}/squid/cache.log
pid_filename {TMP}/squid/squid.pid
coredump_dir {TMP}/squid
workers 1
shutdown_lifetime 1 seconds
""")
    p = start(["squid", "-N", "-f", cfg])
    wait_port(3130)
    return p


def start_tinyproxy():
    cfg = write("tinyproxy.conf", """User nobody
Group nogroup
Port 3132
Listen 127.0.0.1
Timeout 600
MaxClients 2000
Allow 127.0.0.1
ConnectPort 9000
DisableViaHeader Yes
LogLevel Critical
""")
    p = start(["tinyproxy", "-d", "-c", cfg])
    wait_port(3132)
    return p


def start_haproxy_tcp():
    cfg = write("haproxy-tcp.cfg", """global
  maxconn 4000
  nbthread 1
defaults
  mode tcp
  timeout client 30s
  timeout server 30s
  timeout connect 5s
frontend tunnel
  bind 127.0.0.1:3131
  default_backend sink
backend sink
  server sink 127.0.0.2:9000
""")
    p = start(["haproxy", "-f", cfg])
    wait_port(3131)
    return p


def wrk(port, close, connections=16):
    """wrk against the proxy on `port` (None: the upstream directly)."""
    script = write("wrk.lua", f"""wrk.method = "GET"
wrk.path = "{'http://' + UPSTREAM + '/' if port else '/'}"
wrk.headers["Host"] = "{UPSTREAM}"
{'wrk.headers["Connection"] = "close"' if close else ''}
""")
    target = f"http://127.0.0.1:{port}" if port else f"http://{UPSTREAM}"
    out = subprocess.run(pinned(["wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s", "--latency",
                                 "-s", script, target], LOAD_CPU),
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {m.group(1): m.group(2) for m in re.finditer(r"\s+(50|99)%\s+([\d.]+\w+)", out)}
    return rps, total, int(non2xx.group(1)) if non2xx else 0, lat


def micros(text):
    """wrk's latency ("512.00us", "1.03ms", "2.00s") in microseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def at_half_load(max_rps):
    """Latency at half of airlock's maximum keep-alive load, closed loop: airlock with 1, 2, 4, 8
    and 16 connections (each one request at a time, no pause); the maximum is the best of those
    and of the main run; the number of connections whose rate is nearest half of it is measured
    against direct with as many. (Pacing by wrk's `delay()` was tried first: its millisecond
    timers fire together, and the bursts measured the load generator's rhythm.) Returns
    ({name: (req/s, p50 µs, p99 µs)}, connections, the maximum)."""
    tries = {}
    for connections in (1, 2, 4, 8, 16):
        rps, _, _, lat = wrk(3128, close=False, connections=connections)
        tries[connections] = (rps, micros(lat["50"]), micros(lat["99"]))
    best = max([max_rps] + [t[0] for t in tries.values()])
    connections = min(tries, key=lambda c: abs(tries[c][0] - best / 2))
    d_rps, _, _, d_lat = wrk(None, close=False, connections=connections)
    return ({"direct": (d_rps, micros(d_lat["50"]), micros(d_lat["99"])),
             "airlock": tries[connections]}, connections, best)


def bulk(port, plain_tcp=False):
    if not port:
        dest = "TCP:127.0.0.2:9000"
    elif plain_tcp:
        dest = f"TCP:127.0.0.1:{port}"  # a TCP-mode proxy: no CONNECT
    else:
        dest = f"PROXY:127.0.0.1:127.0.0.2:9000,proxyport={port}"
    start_t = time.time()
    pipeline = f"head -c {BULK_BYTES} /dev/zero | socat -u -b 262144 - {dest}"
    subprocess.run(pinned(["sh", "-c", pipeline], LOAD_CPU), check=True,
                   stderr=subprocess.DEVNULL)
    return BULK_BYTES / (time.time() - start_t) / 1e6


def measure_tunnel_only(name, proc, port):
    """A TCP-mode proxy: bulk throughput only (it forwards a port, it cannot proxy HTTP)."""
    before = cpu_seconds(proc.pid)
    mbps = bulk(port, plain_tcp=True)
    return {"name": name, "rps": 0, "lat": {}, "cpu_us_per_req": 0, "churn": 0, "errors": 0,
            "mbps": mbps, "cpu_s_per_gb": (cpu_seconds(proc.pid) - before) / (BULK_BYTES / 1e9)}


def measure(name, proc, port):
    row = {"name": name}
    before = cpu_seconds(proc.pid) if proc else 0
    row["rps"], total, row["errors"], row["lat"] = wrk(port, close=False)
    row["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) / total * 1e6 if proc else 0
    row["churn"], _, churn_err, _ = wrk(port, close=True)
    row["errors"] += churn_err
    before = cpu_seconds(proc.pid) if proc else 0
    row["mbps"] = bulk(port)
    row["cpu_s_per_gb"] = (cpu_seconds(proc.pid) - before) / (BULK_BYTES / 1e9) if proc else 0
    return row


def main():
    start_upstreams()
    rows = [measure("direct", None, None)]
    for name, starter, port in [("airlock", start_airlock, 3128),
                                ("airlock-2w", lambda: start_airlock(2), 3129),
                                ("squid", start_squid, 3130), ("tinyproxy", start_tinyproxy, 3132)]:
        p = starter()
        rows.append(measure(name, p, port))
    rows.append(measure_tunnel_only("haproxy-tcp", start_haproxy_tcp(), 3131))
    by = {r["name"]: r for r in rows}
    half, connections, best = at_half_load(by["airlock"]["rps"])
    print(f"\nSide-by-side, {SECONDS}s per run, wrk 1 thread x 16 connections, 2 GiB bulk; "
          f"airlock with 1 worker (airlock-2w: 2) and its audit log on; "
          f"{f'proxies on CPU {PROXY_CPU}, load and upstream on CPU {LOAD_CPU}' if TWO_CPUS else 'unpinned'}.\n")
    print(f"{'proxy':<11} {'req/s':>9} {'p50':>9} {'p99':>9} {'CPU µs/req':>11} "
          f"{'churn conn/s':>13} {'tunnel MB/s':>12} {'CPU s/GB':>9} {'errors':>7}")
    for r in rows:
        http = r["rps"] > 0
        rps, cpu, churn = ((f"{r['rps']:.0f}", f"{r['cpu_us_per_req']:.1f}", f"{r['churn']:.0f}")
                           if http else ("-", "-", "-"))
        print(f"{r['name']:<11} {rps:>9} {r['lat'].get('50', '-'):>9} "
              f"{r['lat'].get('99', '-'):>9} {cpu:>11} {churn:>13} "
              f"{r['mbps']:>12.0f} {r['cpu_s_per_gb']:>9.2f} {r['errors']:>7}")
    a = by["airlock"]
    print("\nRatios (airlock / peer):")
    for peer in ["direct", "squid", "tinyproxy", "airlock-2w"]:
        p = by[peer]
        print(f"  vs {peer:<11} req/s {a['rps'] / p['rps']:.2f}x   churn "
              f"{a['churn'] / p['churn']:.2f}x   tunnel throughput {a['mbps'] / p['mbps']:.2f}x")
    h = by["haproxy-tcp"]
    print(f"  vs haproxy-tcp tunnel throughput {a['mbps'] / h['mbps']:.2f}x   CPU per GB "
          f"{a['cpu_s_per_gb'] / h['cpu_s_per_gb']:.2f}x" if h["cpu_s_per_gb"] else "")
    print(f"\nAt about half of airlock's maximum keep-alive load ({best:.0f} req/s, the best of "
          f"1 to 16 connections): wrk with {connections} connection(s), each one request at a "
          f"time, airlock at {half['airlock'][0] / best:.0%} of that maximum:")
    for name, (rps, p50, p99) in half.items():
        print(f"  {name:<8} {rps:>9.0f} req/s   p50 {p50:>8.0f} µs   p99 {p99:>8.0f} µs")
    print(f"  added by airlock: p50 {half['airlock'][1] - half['direct'][1]:.0f} µs, "
          f"p99 {half['airlock'][2] - half['direct'][2]:.0f} µs")


def profile(out_dir):
    """airlock-gateway (1 worker) under keep-alive load, connection churn and a bulk tunnel,
    each sampled by `perf record` (DWARF call graphs, all its threads): a flame graph and a
    summary of each in out_dir (bench/flamegraph.py)."""
    start_upstreams()
    gateway = start_airlock()
    for kind, load in (("keepalive", lambda: wrk(3128, close=False)),
                       ("churn", lambda: wrk(3128, close=True)),
                       ("tunnel", lambda: bulk(3128))):
        data = os.path.join(TMP, f"{kind}.perf")
        rec = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384",
                                "-p", str(gateway.pid), "-o", data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not os.path.exists(data) and time.time() < deadline:  # perf attached
            time.sleep(0.05)
        load()
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
        script = os.path.join(TMP, f"{kind}.script")
        with open(script, "w") as f:
            subprocess.run(["perf", "script", "-i", data], stdout=f, stderr=subprocess.DEVNULL,
                           check=True)
        subprocess.run([sys.executable, os.path.join(SRC, "bench", "flamegraph.py"), script,
                        os.path.join(out_dir, f"airlock-{kind}"),
                        f"airlock-gateway, {kind} ({SECONDS}s wrk)" if kind != "tunnel" else
                        f"airlock-gateway, {kind} ({BULK_BYTES >> 30} GiB through CONNECT)"],
                       check=True)
        print(open(os.path.join(out_dir, f"airlock-{kind}.txt")).read())


try:
    profile(PROFILE_DIR) if PROFILE_DIR else main()
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(TMP, ignore_errors=True)
