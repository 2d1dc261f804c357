"""Runs inside the HTTP/2 bench namespace (see run_h2_bench.sh). Upstream: haproxy serving a 1 KiB
body over HTTPS with ALPN h2 on 127.0.0.2:443, a leaf from a throw-away test CA. h2load (nghttp2's
load generator) measures h2 requests through airlock (a rule with `inspect: true`, so every stream
is decided, audited and relayed by the gateway) and directly against the upstream, with 1 and with
100 concurrent streams on one connection (and 4 connections x 100 streams). h2load speaks no
proxy protocol, so both paths go through the same socat shim: for airlock it sends CONNECT to the
gateway (`PROXY:` address), for direct it forwards TCP; h2load's `--connect-to` points at the
shim while the URL keeps the upstream's name (SNI, :authority). Latency percentiles come from
h2load's per-request log. The gateway runs on CPU 0; h2load, socat and the upstream on CPU 1.

Environment: AIRLOCK_BENCH_VERBOSE=1 (a line per run), AIRLOCK_BENCH_PERF=DIR (after the
measured rounds, one more airlock run of 1 connection x 100 streams under perf, its profile in
DIR/h2-airlock.data and the hottest symbols in DIR/h2-airlock.txt), AIRLOCK_BENCH_PERF_STREAMS=N
(that run's streams instead of 100)."""
import os
import subprocess
import sys

SRC = os.environ["AIRLOCK_SOURCE"]
BUILD = os.environ["AIRLOCK_BUILD"]
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = 3
HOST = "bench.example.test"
UPSTREAM_IP = "127.0.0.2"
PATH = "/bench/1k"
BODY_BYTES = 1024
URL = f"https://{HOST}{PATH}"
VERBOSE = bool(os.environ.get("AIRLOCK_BENCH_VERBOSE"))
PERF_DIR = os.environ.get("AIRLOCK_BENCH_PERF", "")
SHAPES = [(1, 1), (1, 100), (4, 100)]  # (connections, concurrent streams per connection)

sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from dnsstub import DnsStub  # noqa: E402  (the integration tests' stub: A records from a table)
from bench_harness import (  # noqa: E402  (the process harness all namespaced benches share)
    CLIENT_CPU, HZ, PROXY_CPU, TMP, TWO_CPUS, fail, in_own_namespaces, make_upstream_pki, median,
    pinned, run_bench, start, start_inspecting_airlock, start_perf, stop_perf, wait_port, write)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def start_upstream(pki):
    body = write("www/1k.bin", ("airlock-bench-1k" * (BODY_BYTES // 16))[:BODY_BYTES])
    cfg = write("upstream.cfg", f"""global
  maxconn 4000
  nbthread 1
defaults
  mode http
  timeout client 30s
  timeout server 30s
  timeout connect 5s
frontend fe
  bind {UPSTREAM_IP}:443 ssl crt {pki['upstream_pem']} alpn h2
  http-request return status 200 content-type application/octet-stream file {body}
""")
    p = start(["haproxy", "-f", cfg], log="upstream.log")
    wait_port(443, UPSTREAM_IP, proc=p)
    return p


def start_shim(listen_port, target):
    p = start(["socat", "-b", "65536", f"TCP-LISTEN:{listen_port},bind=127.0.0.1,fork,reuseaddr",
               target], log=f"socat-{listen_port}.log")
    wait_port(listen_port, proc=p)
    return p


def check_once(shim_port, expect_version):
    """One request with curl over the same path: the response is h2 and whole."""
    r = subprocess.run(["curl", "-sS", "-k", "--http2", "--max-time", "10", "--connect-to",
                        f"{HOST}:443:127.0.0.1:{shim_port}", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download} %{http_version}", URL],
                       capture_output=True, text=True, timeout=20)
    if r.stdout.strip() != f"200 {BODY_BYTES} {expect_version}":
        fail(f"check through {shim_port}: {r.stdout!r} {r.stderr.strip()!r}")


def h2load(shim_port, connections, streams, seconds):
    log = os.path.join(TMP, "h2load.log")
    if os.path.exists(log):
        os.unlink(log)
    args = ["h2load", "-c", str(connections), "-m", str(streams), "-D", str(seconds),
            "--log-file", log, "--connect-to", f"127.0.0.1:{shim_port}",
            URL]
    out = subprocess.run(pinned(args, CLIENT_CPU), capture_output=True, text=True,
                         timeout=seconds + 60)
    text = out.stdout
    if out.returncode != 0:
        fail(f"h2load: {text[-500:]} {out.stderr[-500:]}")
    done = succeeded = 0
    for line in text.splitlines():
        if line.startswith("requests:"):
            parts = dict((v, int(k)) for k, v in
                         (p.strip().split(" ", 1) for p in line[len("requests:"):].split(",")))
            done, succeeded = parts.get("done", 0), parts.get("succeeded", 0)
    durations = sorted(int(line.split("\t")[2]) for line in open(log) if line.count("\t") >= 2)
    if not durations:
        fail(f"h2load logged no requests: {text[-500:]}")

    def pct(q):
        return durations[min(len(durations) - 1, int(q / 100 * len(durations)))] / 1e6
    return {"rps": len(durations) / seconds, "p50": pct(50), "p99": pct(99),
            "failed": done - succeeded, "requests": len(durations)}


def run(name, proc, shim_port, shape, seconds):
    cpu0 = cpu_seconds(proc.pid) if proc else 0.0
    r = h2load(shim_port, shape[0], shape[1], seconds)
    r["cpu_us"] = ((cpu_seconds(proc.pid) - cpu0) / r["requests"] * 1e6) if proc else 0.0
    if VERBOSE:
        print(f"  {name} {shape}: {r['rps']:.0f} req/s p50 {r['p50'] * 1e3:.2f} ms "
              f"p99 {r['p99'] * 1e3:.2f} ms", flush=True)
    return r


def main():
    if not in_own_namespaces():
        fail("run me through bench/run_h2_bench.sh (a network and mount namespace of my own)")
    if TWO_CPUS:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    hosts = write("hosts", f"127.0.0.1 localhost\n{UPSTREAM_IP} {HOST}\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    dns = DnsStub("127.0.0.53", 53)
    dns.set(HOST, [("A", UPSTREAM_IP, 3600)])
    pki = make_upstream_pki(HOST)
    start_upstream(pki)
    gateway, port, _ = start_inspecting_airlock(pki, [HOST], f"{UPSTREAM_IP}/32", BUILD)
    start_shim(8443, f"TCP:{UPSTREAM_IP}:443")
    start_shim(8444, f"PROXY:127.0.0.1:{HOST}:443,proxyport={port}")
    targets = [("direct", None, 8443), ("airlock", gateway, 8444)]
    for name, proc, shim in targets:
        check_once(shim, "2")
        h2load(shim, 1, 10, 1)  # warm-up
    runs = {(name, shape): [] for name, _, _ in targets for shape in SHAPES}
    per_round = max(1, SECONDS // ROUNDS)
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1} of {ROUNDS} ...", flush=True)
        for shape in SHAPES:
            for name, proc, shim in targets:
                runs[name, shape].append(run(name, proc, shim, shape, per_round))
    if gateway.poll() is not None:
        fail(f"airlock exited with {gateway.returncode} during the run")
    check_once(8444, "2")
    report(runs)
    if PERF_DIR:
        data = os.path.join(PERF_DIR, "h2-airlock.data")
        perf = start_perf(gateway.pid, data)
        h2load(8444, 1, int(os.environ.get("AIRLOCK_BENCH_PERF_STREAMS", "100")), per_round)
        stop_perf(perf)
        with open(os.path.join(PERF_DIR, "h2-airlock.txt"), "w") as out:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--sort", "symbol", "--percent-limit", "0.7"],
                           stdout=out, stderr=subprocess.DEVNULL, timeout=600)
        print(f"profile: {PERF_DIR}/h2-airlock.txt")


def report(runs):
    print(f"\nHTTP/2 inside TLS inspection: h2load, 1 KiB responses from haproxy (h2), "
          f"{SECONDS // ROUNDS}s per run in {ROUNDS} interleaved rounds (medians); gateway pinned "
          f"to CPU {PROXY_CPU if TWO_CPUS else '(unpinned)'}, h2load, socat and the upstream to "
          f"CPU {CLIENT_CPU if TWO_CPUS else '(unpinned)'}.\n")
    print(f"{'':<9} {'connections x streams':>22} {'req/s':>9} {'p50':>9} {'p99':>9} "
          f"{'CPU µs/req':>10} {'failed':>6} {'ratio to direct':>16}")
    for shape in SHAPES:
        for name in ("direct", "airlock"):
            rs = runs[name, shape]
            rps = median([r["rps"] for r in rs])
            ratio = ""
            if name == "airlock":
                pairs = zip(rs, runs["direct", shape])
                ratio = f"{median([a['rps'] / d['rps'] for a, d in pairs]):.2f}x"
            cpu = f"{median([r['cpu_us'] for r in rs]):.1f}" if name == "airlock" else "-"
            print(f"{name:<9} {f'{shape[0]} x {shape[1]}':>22} {rps:>9.0f} "
                  f"{median([r['p50'] for r in rs]) * 1e3:>7.2f}ms "
                  f"{median([r['p99'] for r in rs]) * 1e3:>7.2f}ms {cpu:>10} "
                  f"{sum(r['failed'] for r in rs):>6} {ratio:>16}")
    recs = os.path.join(TMP, "airlock", "audit", "audit.jsonl")
    n = sum(1 for line in open(recs, errors="replace") if '"proto":"h2"' in line)
    print(f"\nairlock wrote {n} http.request records with proto h2 (one per stream).")


run_bench(main)
