"""Runs inside the credential bench namespace (see run_credential_bench.sh). What injecting a
credential costs the gateway per inspected request (issue 11: at most 5% more CPU than the same
request without it). Two airlock-gateways of the same build run side by side, started in this
run with the same configuration (one worker, audit log on, the same static credential defined)
but for one rule line:
  - inject: the rule binds the credential (`credentials: [bench]`, injected as
    `Authorization: Bearer {token}`); the client sends its session's placeholder in that header;
  - plain:  the same rule without `credentials:`; the client sends a header of the same length
    (`Bearer ghp_` and 36 random hex digits, nobody's placeholder), passed on as it is.
The upstream, haproxy serving a 1 KiB body over HTTPS/1.1 on 127.0.0.2:443, answers 200 only to
`Authorization: Bearer <the real token>` or to the plain run's header, and 401 otherwise: every
200 through `inject` is a request whose placeholder the gateway replaced. hey (a Go load
generator that speaks CONNECT to an HTTP proxy) drives inspected HTTPS with keep-alive. The
gateways run on CPU 0; hey, the upstream and this script on CPU 1. The gateway's CPU time is the
sum of its threads' run time (/proc/PID/task/*/schedstat, nanoseconds), cross-checked against
utime + stime (/proc/PID/stat, clock ticks). The run is split into ROUNDS rounds; each round
measures both gateways back to back, in alternating order (inject first in odd rounds, plain
first in even ones); figures are medians of the rounds, the ratio the median of the per-round
ratios.

Environment: AIRLOCK_BENCH_CONNECTIONS=N (default 16), AIRLOCK_BENCH_ROUNDS=N (default 10),
AIRLOCK_BENCH_VERBOSE=1 (a line per run), AIRLOCK_BENCH_PERF=DIR (perf profiles of the gateways,
one per run, into DIR; the figures are then not comparable)."""
import glob
import json
import os
import re
import secrets
import signal
import subprocess
import sys

SRC = os.environ["AIRLOCK_SOURCE"]
BUILD = os.environ["AIRLOCK_BUILD"]
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
CONNECTIONS = int(os.environ.get("AIRLOCK_BENCH_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("AIRLOCK_BENCH_ROUNDS", "10"))
WARMUP_SECONDS = 2
HOST = "bench.example.test"
UPSTREAM_IP = "127.0.0.2"
PATH = "/bench/1k"
BODY_BYTES = 1024
URL = f"https://{HOST}{PATH}"
VERBOSE = bool(os.environ.get("AIRLOCK_BENCH_VERBOSE"))
PERF_DIR = os.environ.get("AIRLOCK_BENCH_PERF", "")
TOKEN = "ghs_" + secrets.token_hex(20)  # the real token: only the upstream may see it
PLAIN_HEADER = "Bearer ghp_" + secrets.token_hex(18)  # same length as a placeholder's header

sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from dnsstub import DnsStub  # noqa: E402  (the integration tests' stub: A records from a table)
from bench_harness import (  # noqa: E402  (the process harness all namespaced benches share)
    CLIENT_CPU, HZ, PROXY_CPU, TMP, TWO_CPUS, fail, in_own_namespaces, make_upstream_pki, median,
    parse_hey, per_request, pinned, procs, run_bench, start, start_perf, stop_perf, wait_port,
    write)


def cpu_seconds(pid):
    """(run time of all of pid's threads from schedstat, utime + stime from stat), seconds."""
    ns = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            ns += int(open(path).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return ns / 1e9, (int(fields[11]) + int(fields[12])) / HZ


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
  bind {UPSTREAM_IP}:443 ssl crt {pki['upstream_pem']} alpn http/1.1
  acl injected req.hdr(authorization) -m str "Bearer {TOKEN}"
  acl plain req.hdr(authorization) -m str "{PLAIN_HEADER}"
  http-request return status 200 content-type application/octet-stream file {body} if injected
  http-request return status 200 content-type application/octet-stream file {body} if plain
  http-request return status 401 content-type text/plain string "unexpected credentials"
""", mode=0o600)
    p = start(["haproxy", "-f", cfg], log="upstream.log")
    wait_port(443, UPSTREAM_IP, proc=p)
    return p


def start_airlock(pki, name, port, bind):
    """One gateway; `bind`: its rule binds the credential. Returns (process, port, CA, header
    the client sends)."""
    d = os.path.join(TMP, name)
    write(f"{name}/policies/bench.yaml", f"""version: v1
name: bench
egress:
  - id: bench-upstream
    hosts: [{HOST}]
    inspect: true
    http:
      methods: [GET]
      paths: ["/bench/**"]
{"    credentials: [bench]" if bind else ""}
private:
  - id: bench-net
    cidr: {UPSTREAM_IP}/32
    ports: [443]
""")
    secret = write(f"{name}/bench-token", TOKEN + "\n", mode=0o600)
    cfg = write(f"{name}/airlock.yaml", f"""listen:
  proxy: 127.0.0.1:{port}
  control: {d}/control.sock
workers: 1
state_dir: {d}/state
policy_dir: {d}/policies
audit:
  path: {d}/audit/audit.jsonl
  rotate_bytes: 1073741824
resolver:
  servers: ["127.0.0.53:53"]
tls:
  upstream_ca_file: {pki['ca']}
credentials:
  bench:
    source: static
    file: {secret}
    placeholder: {{env: BENCH_TOKEN, prefix: ghp_}}
    inject:
      - header: Authorization
        value: "Bearer {{token}}"
""")
    p = start([os.path.join(BUILD, "gateway", "airlock-gateway"), "--config", cfg],
              cpu=PROXY_CPU, log=f"{name}/gateway.log")
    wait_port(port, proc=p)
    r = subprocess.run(["curl", "-sS", "--unix-socket", f"{d}/control.sock", "-X", "POST",
                        "-d", '{"policy":"bench","source":"127.0.0.1","token":false,'
                              '"ttl_seconds":86400}', "http://x/v1/sessions"],
                       capture_output=True, text=True, timeout=10)
    try:
        session = json.loads(r.stdout)
    except ValueError:
        session = {}
    if r.returncode != 0 or "id" not in session:
        fail(f"{name} session: {r.stdout} {r.stderr}")
    placeholders = session.get("placeholders", {})
    if bind:
        if set(placeholders) != {"BENCH_TOKEN"}:
            fail(f"{name}: the session has no BENCH_TOKEN placeholder: {r.stdout}")
        header = "Bearer " + placeholders["BENCH_TOKEN"]
        if len(header) != len(PLAIN_HEADER):
            fail(f"placeholder header {len(header)} bytes, plain header {len(PLAIN_HEADER)}")
    else:
        if placeholders:
            fail(f"{name}: a session without bound credentials got placeholders: {r.stdout}")
        header = PLAIN_HEADER
    return p, port, os.path.join(d, "state", "ca.crt"), header


def check_once(port, ca, header):
    """One request with curl verifying the gateway's certificate against its CA (so it really
    inspects) and getting the upstream's 200 (so the header reached it as the upstream wants)."""
    head = os.path.join(TMP, "check.head")
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", f"http://127.0.0.1:{port}",
                        "--cacert", ca, "-H", f"Authorization: {header}", "-o", "/dev/null",
                        "-D", head, "-w", "%{http_code} %{size_download}", URL],
                       capture_output=True, text=True, timeout=20)
    if r.stdout.strip() != f"200 {BODY_BYTES}":
        fail(f"check through port {port}: {r.stdout!r} {r.stderr.strip()!r}")
    # the response head the client got, after the CONNECT's: how the body was framed
    last = open(head, errors="replace").read().strip().split("\r\n\r\n")[-1].lower()
    return "chunked" if "transfer-encoding: chunked" in last else "content-length"


def hey(port, header, seconds):
    args = ["hey", "-z", f"{seconds}s", "-c", str(CONNECTIONS), "-cpus", "1", "-t", "10",
            "-x", f"http://127.0.0.1:{port}", "-H", f"Authorization: {header}", URL]
    out_path = os.path.join(TMP, "hey.out")
    with open(out_path, "w") as out:
        p = subprocess.Popen(pinned(args, CLIENT_CPU), stdout=out, stderr=subprocess.STDOUT)
        procs.append(p)
        try:
            p.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            fail("hey did not finish")
    h = parse_hey(open(out_path).read())
    return {
        "ok": h["ok"],
        "seconds": h["seconds"],
        "rps": h["rps"],
        "lat": h["lat"],
        "bad": sum(h["other"].values()) + sum(n for n, _ in h["errors"]),
        "error_kinds": [f"{c}: {n}" for c, n in h["other"].items()] + h["errors"][:3],
        # hey prints no size for chunked responses (Content-Length -1)
        "size_ok": h["size"] is None or h["size"] == BODY_BYTES,
    }


def run(target, seconds, tag):
    name, proc, port, ca, header = target
    perf = start_perf(proc.pid, os.path.join(PERF_DIR, f"{name}-{tag}.data")) if PERF_DIR else None
    before = cpu_seconds(proc.pid)
    r = hey(port, header, seconds)
    after = cpu_seconds(proc.pid)
    stop_perf(perf)
    r["cpu"], r["cpu_ticks"] = after[0] - before[0], after[1] - before[1]
    if VERBOSE:
        print(f"  {name} round {tag}: {r['rps']:.0f}/s, {r['ok']} ok, {r['bad']} bad, "
              f"CPU {r['cpu']:.3f} s ({per_request(r, 'cpu'):.1f} µs/req; stat "
              f"{per_request(r, 'cpu_ticks'):.1f})", flush=True)
    return r


def audit_counts(name):
    """(http.request records, of them with the credential injected) in `name`'s audit log."""
    total = injected = 0
    path = os.path.join(TMP, name, "audit", "audit.jsonl")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            if '"http.request"' in line:
                total += 1
                injected += '"bench:Authorization"' in line
    return total, injected


def main():
    if not in_own_namespaces():
        fail("run me through bench/run_credential_bench.sh (a network and mount namespace of "
             "my own)")
    if TWO_CPUS:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    # hey and curl resolve through /etc/hosts, airlock through the DNS stub.
    hosts = write("hosts", f"127.0.0.1 localhost\n{UPSTREAM_IP} {HOST}\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    dns = DnsStub("127.0.0.53", 53)
    dns.set(HOST, [("A", UPSTREAM_IP, 3600)])
    pki = make_upstream_pki(HOST)
    start_upstream(pki)
    targets, framing = [], {}
    for name, port, bind in (("inject", 3128, True), ("plain", 3129, False)):
        print(f"starting {name} ...", flush=True)
        proc, port, ca, header = start_airlock(pki, name, port, bind)
        framing[name] = check_once(port, ca, header)
        targets.append((name, proc, port, ca, header))
    for name, proc, port, ca, header in targets:
        hey(port, header, WARMUP_SECONDS)
    seconds = SECONDS / ROUNDS
    runs = {t[0]: [] for t in targets}
    for rnd in range(ROUNDS):
        print(f"round {rnd + 1} of {ROUNDS} ...", flush=True)
        order = targets if rnd % 2 == 0 else targets[::-1]
        for t in order:
            runs[t[0]].append(run(t, seconds, rnd + 1))
    exits = {}
    for name, proc, port, ca, header in targets:
        check_once(port, ca, header)  # still answering after the load
        if proc.poll() is not None:
            fail(f"{name} exited with {proc.returncode} during the run")
        proc.send_signal(signal.SIGTERM)
        try:
            exits[name] = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            exits[name] = "killed after 20 s"
    report(runs, exits, framing)


def report(runs, exits, framing):
    print(f"\nCredential injection: {SECONDS}s per gateway in {ROUNDS} rounds (both gateways back "
          f"to back in each round, alternating which goes first; figures are medians of the "
          f"rounds), hey with {CONNECTIONS} connections and keep-alive, inspected HTTPS/1.1, 1 KiB "
          f"responses from haproxy; gateways pinned to CPU "
          f"{PROXY_CPU if TWO_CPUS else '(unpinned)'}, hey and the upstream to CPU "
          f"{CLIENT_CPU if TWO_CPUS else '(unpinned)'}.\n")
    print(f"{'':<8} {'req/s':>8} {'p50':>8} {'p99':>8} {'CPU µs/req':>10} {'(stat)':>7} "
          f"{'CPU0':>5} {'requests':>9} {'bad':>4}  rounds (CPU µs/req)")
    for name, rs in runs.items():
        print(f"{name:<8} {median([r['rps'] for r in rs]):>8.0f} "
              f"{median([r['lat'].get('50', 0) for r in rs]) * 1e3:>6.2f}ms "
              f"{median([r['lat'].get('99', 0) for r in rs]) * 1e3:>6.2f}ms "
              f"{median([per_request(r, 'cpu') for r in rs]):>10.2f} "
              f"{median([per_request(r, 'cpu_ticks') for r in rs]):>7.1f} "
              f"{median([r['cpu'] / r['seconds'] for r in rs]) * 100:>4.0f}% "
              f"{sum(r['ok'] for r in rs):>9} {sum(r['bad'] for r in rs):>4}  "
              + "/".join(f"{per_request(r, 'cpu'):.1f}" for r in rs))
        kinds = [k for r in rs for k in r["error_kinds"]]
        if kinds:
            print(f"  {name} errors: {kinds[:3]}")
        if not all(r["size_ok"] for r in rs):
            print(f"  {name}: responses were not {BODY_BYTES} bytes")
    pairs = list(zip(runs["inject"], runs["plain"]))
    ratios = sorted(per_request(a, "cpu") / per_request(b, "cpu") for a, b in pairs
                    if per_request(b, "cpu"))
    tick_ratios = [per_request(a, "cpu_ticks") / per_request(b, "cpu_ticks") for a, b in pairs
                   if per_request(b, "cpu_ticks")]
    rps_ratios = [a["rps"] / b["rps"] for a, b in pairs if b["rps"]]
    ratio = median(ratios)
    print(f"\nCPU per request, inject / plain: {ratio:.3f}x (median of the per-round ratios; "
          f"rounds {ratios[0]:.3f}-{ratios[-1]:.3f}; from utime+stime "
          f"{median(tick_ratios):.3f}x); req/s inject / plain {median(rps_ratios):.3f}x")
    print(f"target (injection adds <= 5% CPU per request): "
          f"{'met' if ratio <= 1.05 else 'NOT met'} ({(ratio - 1) * 100:+.1f}%)")
    for name in runs:
        total, injected = audit_counts(name)
        print(f"{name}: {total} http.request audit records, {injected} with the credential "
              f"injected; responses to the client framed by {framing.get(name)}; exit status "
              f"after SIGTERM: {exits.get(name)}")
        for path in (os.path.join(TMP, name, "audit", "audit.jsonl"),
                     os.path.join(TMP, name, "gateway.log")):
            if os.path.exists(path) and TOKEN in open(path, errors="replace").read():
                print(f"  THE REAL TOKEN IS IN {path}")
        log = os.path.join(TMP, name, "gateway.log")
        if os.path.exists(log):
            bad = [line.rstrip() for line in open(log, errors="replace")
                   if re.search(r"\b(error|warn|warning|critical)\b", line, re.I)]
            print(f"  {name}'s log: {len(bad)} warning or error lines" +
                  "".join(f"\n    {line[:200]}" for line in bad[:5]))


run_bench(main)
