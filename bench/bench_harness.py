"""What the benches that run inside a network namespace of their own share (tls_bench.py,
h2_bench.py, credential_bench.py, started by run_in_bench_ns.sh): a temporary directory,
processes started pinned to a CPU and stopped however the run ends, waiting for a port, files and
a throw-away upstream PKI in that directory, the gateway with an inspecting rule, and medians. Never on the host: `in_own_namespaces()` says
whether this process runs in the namespaces run_in_bench_ns.sh made."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2 and os.cpu_count() >= 2
PROXY_CPU, CLIENT_CPU = "0", "1"  # what is measured on CPU 0; load and upstream on CPU 1

TMP = os.environ.get("AIRLOCK_BENCH_TMP") or tempfile.mkdtemp(prefix="airlock-bench-")
os.chmod(TMP, 0o755)
procs = []


def fail(msg):
    raise RuntimeError(msg)


def in_own_namespaces():
    """True only inside a network and mount namespace other than the ones run_in_bench_ns.sh
    started in (AIRLOCK_OUTER_NS): the benches bind-mount a hosts file over /etc/hosts and must
    never do so on the host itself."""
    outer = os.environ.get("AIRLOCK_OUTER_NS", "").split()
    try:
        mine = [os.readlink(f"/proc/self/ns/{ns}") for ns in ("net", "mnt")]
    except OSError:
        return False
    return len(outer) == 2 and all(m != o for m, o in zip(mine, outer))


def pinned(args, cpu):
    return (["taskset", "-c", cpu] + args) if TWO_CPUS else args


def start(args, cpu=CLIENT_CPU, log=None, **kw):
    """Starts `args` pinned to `cpu`, its output in TMP/log; stopped by run_bench()."""
    out = open(os.path.join(TMP, log), "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(pinned(args, cpu), stdout=out, stderr=out, **kw)
    p.log = os.path.join(TMP, log) if log else None
    procs.append(p)
    return p


def wait_port(port, host="127.0.0.1", timeout=30, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = open(proc.log, errors="replace").read()[-2000:] if proc.log else ""
            fail(f"{proc.args} exited with {proc.returncode} before listening on {host}:{port}"
                 f"\n{tail}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    fail(f"nothing listens on {host}:{port}")


def write(name, text, mode=0o644):
    path = os.path.join(TMP, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(name, cn):
    """A P-256 CA in TMP/pki: (certificate, key) paths."""
    os.makedirs(os.path.join(TMP, "pki"), exist_ok=True)
    cert, key = os.path.join(TMP, "pki", name + ".crt"), os.path.join(TMP, "pki", name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    return cert, key


def make_upstream_pki(host, *more):
    """A throw-away CA and the upstream's P-256 leaf for `host` (and `more` names): {"ca": the
    CA's certificate, "upstream_pem": the leaf's certificate and key in one file (as haproxy
    takes them)}."""
    ca_cert, ca_key = make_ca("upstream-ca", "Airlock bench upstream CA")
    key, csr, cert = (os.path.join(TMP, "pki", "upstream" + e) for e in (".key", ".csr", ".crt"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={host}")
    san = ",".join(f"DNS:{h}" for h in (host, *more))
    ext = write("pki/upstream.ext", f"subjectAltName={san}\n"
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial", "4242",
            "-days", "2", "-sha256", "-extfile", ext, "-out", cert)
    pem = os.path.join(TMP, "pki", "upstream.pem")
    with open(pem, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return {"ca": ca_cert, "upstream_pem": pem}


def start_inspecting_airlock(pki, hosts, cidr, build, tcp_ports=()):
    """airlock-gateway on 127.0.0.1:3128 (one worker, audit log on) with a rule inspecting
    `hosts` (GET /bench/**) whose upstreams are in `cidr` (port 443), trusting the bench CA, and
    a session for 127.0.0.1: (process, port, the gateway's CA certificate). `tcp_ports`: a `tcp`
    rule for the same hosts on those ports as well (raw tunnels)."""
    tcp_rule = f"""  - id: bench-raw
    hosts: [{", ".join(hosts)}]
    ports: [{", ".join(map(str, tcp_ports))}]
    protocol: tcp
""" if tcp_ports else ""
    write("airlock/policies/bench.yaml", f"""version: v1
name: bench
egress:
  - id: bench-upstream
    hosts: [{", ".join(hosts)}]
    inspect: true
    http:
      methods: [GET]
      paths: ["/bench/**"]
{tcp_rule}private:
  - id: bench-net
    cidr: {cidr}
    ports: [{", ".join(map(str, (443, *tcp_ports)))}]
""")
    d = os.path.join(TMP, "airlock")
    cfg = write("airlock/airlock.yaml", f"""listen:
  proxy: 127.0.0.1:3128
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
""")
    p = start([os.path.join(build, "gateway", "airlock-gateway"), "--config", cfg],
              cpu=PROXY_CPU, log="airlock/gateway.log")
    wait_port(3128, proc=p)
    r = subprocess.run(["curl", "-sS", "--unix-socket", f"{d}/control.sock", "-X", "POST",
                        "-d", '{"policy":"bench","source":"127.0.0.1","token":false,'
                              '"ttl_seconds":86400}', "http://x/v1/sessions"],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0 or '"id"' not in r.stdout:
        fail(f"airlock session: {r.stdout} {r.stderr}")
    return p, 3128, os.path.join(d, "state", "ca.crt")


def parse_hey(out):
    """hey's report: {"ok": 200s, "seconds", "rps" (200s per second), "lat": {percent: seconds},
    "other": {status: count} but 200, "errors": [(count, what)], "size": bytes per response or
    None (hey prints none for chunked responses)}."""
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    if not total:
        fail(f"hey: {out[-2000:]}")
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    err_section = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    size = re.search(r"Size/request:\s+(\d+) bytes", out)
    ok, seconds = codes.pop(200, 0), float(total.group(1))
    return {
        "ok": ok,
        "seconds": seconds,
        "rps": ok / seconds,
        "lat": {q: float(v) for q, v in re.findall(r"(\d+)% in ([\d.]+) secs", out)},
        "other": codes,
        "errors": [(int(n), w.strip()) for n, w in re.findall(r"\[(\d+)\]\s+(.+)", err_section)],
        "size": int(size.group(1)) if size else None,
    }


def start_perf(pid, path):
    """perf record of `pid` into `path` (profiling, not measuring: it slows the process down)."""
    perf = subprocess.Popen(pinned(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                                    "--call-graph", "dwarf,16384", "-p", str(pid), "-o", path],
                                   CLIENT_CPU),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(perf)
    time.sleep(1)  # perf attaches
    return perf


def stop_perf(perf):
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)


def median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return 0.0
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def per_request(r, key):
    """r[key] per successful request, in millionths (µs for seconds)."""
    return r[key] / r["ok"] * 1e6 if r["ok"] else 0.0


def run_bench(main):
    """Runs main(); then, however it ended (SIGTERM included), stops every process start()
    started and removes TMP unless the caller owns it."""
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not os.environ.get("AIRLOCK_BENCH_TMP"):
            shutil.rmtree(TMP, ignore_errors=True)
