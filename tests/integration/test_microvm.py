"""vmlaunch with real microVMs: QEMU `microvm` under TCG booting the guest image that `vmlaunch
image build` made (Debian's cloud kernel, busybox, the static guest agent). The gateway runs in
this test namespace; each VM's only link is a tap here, under vmlaunch's nftables table. Every
assertion is on what happened: what the command printed, what the upstream server received, what
the audit log holds, and what is left on the host afterwards. Boots are few (one per test)."""
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time

import pytest

from conftest import CANARY_BANNER, VMLAUNCH_BIN, Gateway, RawHttpUpstream, listen, serve

IMAGE = os.environ.get("AIRLOCK_IMAGE_CACHE", "")
# The image with a Debian root disk and a test CA baked in (tests/integration/build_rootfs_image.sh).
ROOTFS_IMAGE = os.environ.get("AIRLOCK_ROOTFS_IMAGE_CACHE", "")
TEST_CA = os.environ.get("AIRLOCK_TEST_CA", "")
pytestmark = pytest.mark.skipif(
    not IMAGE, reason="no guest image: the microVM tests run in the release build (the "
                      "sanitizer build cannot link the static guest agent)")

POOL = "100.98.0.0/24"
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
                "CURL_CA_BUNDLE")
VM_POLICY = """
version: v1
name: vm
egress:
  - {id: web, hosts: [web.test], protocol: http, ports: [8080]}
  - {id: repo, hosts: [repo.test], protocol: tls, ports: [8443]}
private:
  - {id: upstreams, cidr: 10.78.0.0/29, ports: [8080, 8443]}
"""


@pytest.fixture(scope="module")
def vm_upstreams():
    for a in ("10.78.0.2", "10.78.0.3", "10.78.0.9"):
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], capture_output=True)
    web = RawHttpUpstream("10.78.0.2", 8080)
    direct_hits = []
    direct = listen("10.78.0.9", 8080)
    serve(direct, lambda c: (direct_hits.append(c.recv(100)), c.close()))
    yield {"web": web, "direct": direct_hits}


@pytest.fixture
def env(tmp_path, dns, vm_upstreams):
    """A gateway listening where taps reach it, the airlock table, and a vmlaunch wrapper."""
    dns.set("web.test", [("A", "10.78.0.2", 60)])
    dns.set("repo.test", [("A", "10.78.0.3", 60)])
    g = Gateway(str(tmp_path), dns, policies={"vm": VM_POLICY})
    g.serve_links()
    subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
    state = str(tmp_path / "run")

    def vmlaunch(*args, timeout=120, **kw):
        return subprocess.run([VMLAUNCH_BIN, *args], capture_output=True, timeout=timeout, **kw)

    def vm_args(accel="tcg", image=IMAGE, memory="256M"):
        return ["--policy", "vm", "--control", g.control, "--state-dir", state, "--pool", POOL,
                "--image", image, "--accel", accel, "--memory", memory]
    try:
        yield g, vmlaunch, vm_args, state, vm_upstreams
    finally:
        # Whatever a failed test left: the product's own gc, then the table.
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", state, "--pool", POOL],
                       capture_output=True)
        for vm in os.listdir(os.path.join(state, "vms")) if os.path.isdir(
                os.path.join(state, "vms")) else []:
            subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        g.stop()


CGROUP_PARENTS = ("/sys/fs/cgroup/airlock", "/sys/fs/cgroup/memory/airlock",
                  "/sys/fs/cgroup/pids/airlock")


def vm_cgroups():
    """The per-VM cgroups that exist (v2, or v1 memory and pids); run_in_netns.sh mounts the
    host's hierarchies for the tests."""
    return sorted(os.path.join(p, d) for p in CGROUP_PARENTS if os.path.isdir(p)
                  for d in os.listdir(p) if d.startswith("vm-"))


def leftovers(g, state):
    """What a VM could leave behind: directories, taps, firewall elements, sessions, leases,
    cgroups, VMM processes."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "list", "set", "inet", "airlock", "links"],
                         capture_output=True, text=True).stdout
    pool_file = os.path.join(state, "address-pool.json")
    pool = open(pool_file).read() if os.path.exists(pool_file) else ""
    vms = os.path.join(state, "vms")
    qemu = subprocess.run(["pgrep", "-f", "qemu-system-x86_64 -name vm-"], capture_output=True,
                          text=True).stdout.split()
    return {"dirs": os.listdir(vms) if os.path.isdir(vms) else [],
            "taps": [l for l in links.splitlines() if ": alvm-" in l],
            "nft": "100.98." in nft,
            "sessions": g.api("GET", "/v1/sessions")[1]["sessions"],
            "leases": '"100.98.' in pool,
            "cgroups": vm_cgroups(),
            "qemu": qemu}


CLEAN = {"dirs": [], "taps": [], "nft": False, "sessions": [], "leases": False, "cgroups": [],
         "qemu": []}


def wait_until(condition, timeout, what):
    """Polls `condition` until it holds; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_run_boots_executes_and_tears_down(env, tmp_path):
    """One ephemeral VM: the execution contract (stdin, stdout, stderr, exit code, duration),
    files in and out, the session's variables, and nothing left afterwards."""
    g, vmlaunch, vm_args, state, up = env
    src = tmp_path / "input.txt"
    src.write_bytes(b"data from the host\n")
    out = tmp_path / "output.txt"
    script = ("cat /work/input.txt > /work/out.txt; echo \"upper: $(tr a-z A-Z)\" >> /work/out.txt;"
              " echo \"to stdout $AIRLOCK_VM\"; echo to stderr >&2;"
              " echo proxy=$HTTP_PROXY; echo session=$AIRLOCK_SESSION; echo extra=$EXTRA; exit 7")
    r = vmlaunch("run", *vm_args(), "--json", "-i", "--env", "EXTRA=yes",
                 "--put", f"{src}:/work/input.txt", "--get", f"/work/out.txt:{out}",
                 "--", "sh", "-c", script, input=b"piped in")
    assert r.returncode == 7, r.stderr
    c = json.loads(r.stdout)
    assert c["exit_code"] == 7 and c["timed_out"] is False and c["signal"] == 0
    assert c["stderr"] == "to stderr\n"
    assert f"to stdout {c['vm']}\n" in c["stdout"]
    assert "proxy=http://100.98.0.1:3128\n" in c["stdout"]
    assert "extra=yes\n" in c["stdout"]
    session_id = [l for l in c["stdout"].splitlines() if l.startswith("session=")][0][8:]
    assert session_id.startswith("s-")
    assert out.read_bytes() == b"data from the host\nupper: PIPED IN\n"
    assert c["files"][0]["path"] == "/work/out.txt" and c["files"][0]["size"] == 35
    t = c["timings_ms"]
    assert t["boot"] > 0 and t["create_to_ready"] >= t["boot"] and t["teardown"] > 0
    # The gateway saw the session made for the VM's address, and its end.
    recs = g.records()
    created = [x for x in recs if x["event"] == "session.create" and x.get("session") == session_id]
    assert created and created[0].get("src") == "100.98.0.2", created
    assert any(x["event"] == "session.delete" and x.get("session") == session_id for x in recs)
    assert leftovers(g, state) == CLEAN


def test_persistent_session(env, dns, canaries):
    """start, then execs that share state; exit codes, a timeout that kills, a command that
    cannot start; the gateway's CA and the variables that trust it; from inside: an allowed
    request, a denied host, the metadata address, an unknown DNS name and a connection that
    bypasses the proxy; with the gateway stopped, nothing leaves the tap (fail closed), and
    once it is back the VM's session works again; stop gives everything back."""
    g, vmlaunch, vm_args, state, up = env
    r = vmlaunch("start", *vm_args(), "--ttl", "10m", "--json", "--cpus", "2", "--overlay", "32M")
    assert r.returncode == 0, r.stderr
    vm = json.loads(r.stdout)["id"]
    listed = json.loads(vmlaunch("ls", "--state-dir", state, "--json").stdout)
    assert [(x["id"], x["state"], x["policy"]) for x in listed] == [(vm, "running", "vm")]

    def ex(*cmd, extra=(), **kw):
        return vmlaunch("exec", "--state-dir", state, *extra, vm, "--", *cmd, **kw)

    # The limits as the guest sees them: vCPUs, memory, and a writable space that ends.
    r = ex("sh", "-c", "nproc; grep MemTotal /proc/meminfo; df -k / | tail -1")
    nproc, mem, df = r.stdout.decode().splitlines()
    assert nproc == "2"
    assert 150_000 < int(mem.split()[1]) <= 256 * 1024, mem
    assert int(df.split()[1]) == 32 * 1024, df
    r = ex("dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count=48")
    assert r.returncode != 0 and b"No space left" in r.stderr, r.stderr
    assert ex("rm", "/root/fill").returncode == 0

    assert ex("sh", "-c", "echo kept > /root/state; cd /tmp; echo $$ > pid").returncode == 0
    r = ex("cat", "/root/state")
    assert r.stdout == b"kept\n"
    r = ex("sh", "-c", "cat; echo oops >&2; exit 42", extra=("-i",), input=b"in\n")
    assert (r.returncode, r.stdout, r.stderr) == (42, b"in\n", b"oops\n")
    r = ex("sleep", "30", extra=("--timeout", "1s", "--json"))
    c = json.loads(r.stdout)
    assert r.returncode == 124 and c["timed_out"] is True and c["signal"] == 9
    assert 900 <= c["duration_ms"] < 10000
    assert ex("sh", "-c", "pgrep sleep || echo none").stdout == b"none\n", "the timeout killed it"
    r = ex("/no/such/program")
    assert r.returncode == 127 and b"No such file" in r.stderr

    # An allowed request through the gateway (the guest's proxy variables point at it).
    n = len(up["web"].requests)
    r = ex("wget", "-q", "-O", "-", "http://web.test:8080/from-vm")
    assert r.stdout == b"hello GET /from-vm", r.stderr
    assert up["web"].requests[n]["target"] == "/from-vm"
    # The gateway's CA, put into the guest by vmlaunch (GET /v1/ca): a bundle of the host's
    # roots (this image has none) and that CA, named by the five variables every exec gets.
    ca = g.api("GET", "/v1/ca")[1]["certificate"]
    r = ex("sh", "-c", "env | grep -E '^(%s)=' | sort; cat /etc/airlock/ca.crt"
           % "|".join(CA_VARIABLES))
    roots = "/etc/ssl/certs/ca-certificates.crt"
    roots = open(roots).read().strip() + "\n" if os.path.exists(roots) else ""
    assert r.stdout.decode() == "".join(
        f"{v}=/etc/airlock/ca.crt\n" for v in sorted(CA_VARIABLES)) + roots + ca.strip() + "\n"
    # A denied host: 403 with the reason in a header and the body.
    raw = ("printf 'GET http://pastebin.test/ HTTP/1.1\\r\\nHost: pastebin.test\\r\\n\\r\\n' |"
           " nc -w 5 100.98.0.1 3128")
    r = ex("sh", "-c", raw)
    assert r.stdout.startswith(b"HTTP/1.1 403"), r.stdout
    assert b"X-Airlock-Reason: host_not_allowed" in r.stdout, r.stdout
    # The metadata address, through the proxy and directly (captured by the firewall). A canary
    # listens on 169.254.169.254:80 in this namespace, where the tap's packets arrive: had the
    # direct connection got through, nc would print its banner and the canary would record it.
    hits = len(canaries.hits)
    r = ex("sh", "-c", raw.replace("pastebin.test", "169.254.169.254"))
    assert b"X-Airlock-Reason: address_metadata" in r.stdout, r.stdout
    r = ex("sh", "-c", "unset http_proxy HTTP_PROXY; echo x | nc -w 3 169.254.169.254 80")
    assert CANARY_BANNER not in r.stdout and r.stdout == b"", r.stdout
    # An unknown name: the responder says NXDOMAIN and asks no upstream.
    dns.queries.clear()
    r = ex("nslookup", "exfil.unknown.test")
    assert r.returncode != 0 and b"NXDOMAIN" in r.stdout + r.stderr
    assert all("exfil" not in name for name, _ in dns.queries), "an upstream heard the name"
    # Straight to an address, ignoring the proxy: captured, refused, never delivered.
    r = ex("sh", "-c", "unset http_proxy HTTP_PROXY; echo direct | nc -w 3 10.78.0.9 8080")
    assert b"direct" not in r.stdout
    assert up["direct"] == []
    recs = g.records(lambda x: any(y.get("original_ip") == "10.78.0.9" for y in x), timeout=5)
    mine = [x for x in recs if x.get("src") == "100.98.0.2"]
    assert any(x["event"] == "connection.open" and x["decision"] == "allow" and
               x["host"] == "web.test" for x in mine)
    assert any(x["event"] == "connection.open" and x["host"] == "pastebin.test" and
               x["decision"] == "deny" and x["reason"] == "host_not_allowed" for x in mine)
    assert any(x.get("reason") == "address_metadata" for x in mine)
    assert any(x["event"] == "dns.query" and x["name"] == "exfil.unknown.test" and
               x["decision"] == "deny" for x in mine)
    assert any(x.get("original_ip") == "10.78.0.9" and x["decision"] == "deny" for x in mine)
    assert any(x["event"] == "connection.open" and x.get("original_ip") == "169.254.169.254" and
               x["decision"] == "deny" for x in mine), "the direct metadata connection"
    # The allowed request above came later over the same tap; the canaries' own sync marker
    # makes sure whatever reached them before is counted.
    assert canaries.new_hits(hits) == [], "a connection from the VM reached a canary"

    # The gateway down: the tap fails closed. Through the proxy, by name (the DNS responder is
    # down too), straight to an address, to the direct listener and to the metadata address:
    # every attempt fails, and nothing reaches the upstream, the direct listener or a canary.
    # vmlaunch exec speaks to the guest agent over its serial channel, not the network.
    n, hits = len(up["web"].requests), len(canaries.hits)
    g.stop()  # SIGTERM; stop() checks exit status 0 and no sanitizer report
    for cmd in ("wget -q -T 5 -O - http://web.test:8080/while-down",
                "unset http_proxy HTTP_PROXY; wget -q -T 5 -O - http://10.78.0.2:8080/direct-down",
                "unset http_proxy HTTP_PROXY; echo direct | nc -w 3 10.78.0.9 8080",
                "unset http_proxy HTTP_PROXY; echo x | nc -w 3 169.254.169.254 80",
                "printf 'GET http://web.test:8080/raw-down HTTP/1.1\\r\\nHost: web.test:8080"
                "\\r\\n\\r\\n' | nc -w 3 100.98.0.1 3128"):
        r = ex("sh", "-c", cmd)
        assert r.stdout == b"", (cmd, r.stdout)
        if "wget" in cmd:
            assert r.returncode != 0, (cmd, r.returncode, r.stderr)
    r = ex("nslookup", "web.test")
    assert r.returncode != 0 and b"10.78.0.2" not in r.stdout, r.stdout
    # Back up (the session comes back from the state directory): the same VM is served again.
    # That request crossed the tap after every attempt above, so anything they delivered has
    # arrived by now.
    g.start()
    r = ex("wget", "-q", "-O", "-", "http://web.test:8080/back-up")
    assert r.stdout == b"hello GET /back-up", r.stderr
    assert [x["target"] for x in up["web"].requests[n:]] == ["/back-up"], "traffic left while down"
    assert up["direct"] == []
    assert canaries.new_hits(hits) == [], "a connection from the VM reached a canary"

    # An exec that arrives while another runs runs beside it: the second ends first.
    # (Each command announces that it runs with a request the upstream records: the test
    # waits for that, not for a fixed time.)
    cmd = [VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--", "sh", "-c"]

    def running(target):
        return lambda: any(x["target"] == target for x in up["web"].requests)
    first = subprocess.Popen([*cmd, "wget -q -O /dev/null http://web.test:8080/first-running;"
                                    " sleep 2; echo first >> /root/order"])
    wait_until(running("/first-running"), 60, "the first exec did not start")
    r = ex("sh", "-c", "echo second >> /root/order; cat /root/order")
    assert (r.returncode, r.stdout) == (0, b"second\n")
    assert first.wait(timeout=30) == 0
    assert ex("cat", "/root/order").stdout == b"second\nfirst\n"
    # A stop does not wait for a running command: it ends it and the VM at once.
    long = subprocess.Popen([*cmd, "wget -q -O /dev/null http://web.test:8080/long-running;"
                                   " sleep 600"], stderr=subprocess.PIPE)
    wait_until(running("/long-running"), 60, "the long exec did not start")
    r = vmlaunch("stop", "--state-dir", state, vm, timeout=60)  # (waiting would take 600 s)
    assert r.returncode == 0, r.stderr
    _, err = long.communicate(timeout=30)
    assert long.returncode != 0 and b"VM is going away (stop requested)" in err, err
    assert leftovers(g, state) == CLEAN


@pytest.fixture(scope="module")
def repo_upstream(tmp_path_factory, vm_upstreams):
    """https://repo.test:8443 with a certificate from the test CA baked into the root-disk image:
    a file and a bare git repository served the "dumb" HTTP way. Records each request path."""
    if not (ROOTFS_IMAGE and TEST_CA):
        pytest.skip("no root-disk image (built by the microvm.rootfs_image CTest fixture)")
    d = tmp_path_factory.mktemp("repo")
    key, csr, crt = d / "repo.key", d / "repo.csr", d / "repo.crt"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj",
                    "/CN=repo.test"], check=True, capture_output=True)
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:repo.test\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", f"{TEST_CA}/ca.crt", "-CAkey",
                    f"{TEST_CA}/ca.key", "-CAcreateserial", "-CAserial", d / "ca.srl", "-days",
                    "1", "-extfile", ext, "-out", crt], check=True, capture_output=True)
    www = d / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from repo.test\n")
    work = d / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", work], check=True)
    (work / "README").write_text("cloned through the gateway\n")
    subprocess.run([*git, "-C", work, "add", "README"], check=True)
    subprocess.run([*git, "-C", work, "commit", "-qm", "first"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", work, www / "project.git"], check=True)
    subprocess.run(["git", "-C", www / "project.git", "update-server-info"], check=True)
    paths = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a):
            paths.append(self.path)

    server = http.server.ThreadingHTTPServer(("10.78.0.3", 8443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield paths
    server.shutdown()
    server.server_close()


def image_disk(cache):
    return os.path.join(os.path.realpath(os.path.join(cache, "images", "default")), "rootfs.ext4")


def test_debian_root_disk_and_ca_trust(env, repo_upstream):
    """--rootfs: Debian's curl, git and python3 on the read-only disk under a throw-away overlay;
    each trusts the CA baked into the image (`image build --ca-cert`), which vmlaunch keeps in
    the bundle it makes with the gateway's CA (CURL_CA_BUNDLE, GIT_SSL_CAINFO, SSL_CERT_FILE),
    and reaches https://repo.test through the gateway; without that CA the same request fails;
    writes never reach the disk."""
    g, vmlaunch, vm_args, state, up = env
    disk = image_disk(ROOTFS_IMAGE)
    before = hashlib.sha256(open(disk, "rb").read()).hexdigest()
    r = vmlaunch("start", *vm_args(image=ROOTFS_IMAGE, memory="512M"), "--rootfs", "--json",
                 timeout=180)
    assert r.returncode == 0, r.stderr
    vm = json.loads(r.stdout)["id"]

    def ex(script):
        return vmlaunch("exec", "--state-dir", state, "--timeout", "60s", vm, "--", "sh", "-c",
                        script, timeout=90)

    r = ex("grep ' / ' /proc/mounts; . /etc/os-release; echo $VERSION_CODENAME")
    assert r.returncode == 0, r.stderr
    assert b"root / overlay " in r.stdout and b"lowerdir=/lower" in r.stdout, r.stdout
    assert r.stdout.endswith(b"bookworm\n"), r.stdout

    n = len(repo_upstream)
    r = ex("curl -sS https://repo.test:8443/hello.txt")
    assert (r.returncode, r.stdout) == (0, b"hello from repo.test\n"), r.stderr
    r = ex("python3 -c 'import urllib.request as u;"
           " print(u.urlopen(\"https://repo.test:8443/hello.txt\").read().decode(), end=\"\")'")
    assert (r.returncode, r.stdout) == (0, b"hello from repo.test\n"), r.stderr
    r = ex("git clone -q https://repo.test:8443/project.git /root/project &&"
           " cat /root/project/README")
    assert (r.returncode, r.stdout) == (0, b"cloned through the gateway\n"), r.stderr
    assert repo_upstream[n:n + 2] == ["/hello.txt", "/hello.txt"], repo_upstream
    assert "/project.git/info/refs?service=git-upload-pack" in repo_upstream[n + 2:]
    # The trust comes from the baked CA: with Debian's roots alone, verification fails.
    r = ex("curl -sS --cacert /etc/ssl/certs/ca-certificates.crt https://repo.test:8443/hello.txt")
    assert r.returncode == 60 and b"certificate" in r.stderr, (r.returncode, r.stderr)
    # The overlay takes writes anywhere, and the disk never sees them.
    assert ex("echo scratch > /usr/bin/scratch && cat /usr/bin/scratch").stdout == b"scratch\n"

    recs = g.records()
    assert any(x["event"] == "connection.open" and x.get("host") == "repo.test" and
               x["decision"] == "allow" and x.get("src") == "100.98.0.2" for x in recs)
    r = vmlaunch("stop", "--state-dir", state, vm)
    assert r.returncode == 0, r.stderr
    assert leftovers(g, state) == CLEAN
    assert hashlib.sha256(open(disk, "rb").read()).hexdigest() == before


def test_ttl_expiry_tears_down(env):
    """A short TTL: the monitor tears the VM down by itself. This start also uses
    --accel auto: on a host whose /dev/kvm cannot boot a guest the probe falls back to TCG and
    says so."""
    g, vmlaunch, vm_args, state, up = env
    r = vmlaunch("start", *vm_args(accel="auto"), "--ttl", "6s", timeout=180)
    assert r.returncode == 0, r.stderr
    if os.path.exists("/dev/kvm"):
        assert b"probing KVM" in r.stderr or b"using TCG" in r.stderr, r.stderr
    vm = r.stdout.decode().strip()
    assert os.path.isdir(os.path.join(state, "vms", vm))
    deadline = time.time() + 60
    while time.time() < deadline and leftovers(g, state) != CLEAN:
        time.sleep(0.5)
    assert leftovers(g, state) == CLEAN
    # The gateway ended the session by the same TTL, or the monitor deleted it first.
    assert any(x["event"] in ("session.expire", "session.delete") for x in g.records())


def wait_for_vm(state, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        vms = os.path.join(state, "vms")
        for vm in os.listdir(vms) if os.path.isdir(vms) else []:
            try:
                rec = json.load(open(os.path.join(vms, vm, "state.json")))
            except (OSError, ValueError):
                continue
            if rec["state"] == "running":
                return rec
        time.sleep(0.2)
    raise AssertionError("no VM came up")


def test_gc_after_kill_9_of_the_launcher(env):
    g, vmlaunch, vm_args, state, up = env
    p = subprocess.Popen([VMLAUNCH_BIN, "run", *vm_args(), "--", "sleep", "600"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rec = wait_for_vm(state)
        # The VMM runs in cgroups of its own, limited to the guest's memory plus 256 MiB for
        # QEMU itself and to 256 processes.
        assert rec["cgroups"] and rec["cgroups"] == vm_cgroups(), (rec["cgroups"], vm_cgroups())
        for d in rec["cgroups"]:
            assert str(rec["vmm_pid"]) in open(f"{d}/cgroup.procs").read().split()
            for limit, want in (("memory.max", 512 << 20), ("memory.limit_in_bytes", 512 << 20),
                                ("pids.max", 256)):
                if os.path.exists(f"{d}/{limit}"):
                    assert int(open(f"{d}/{limit}").read()) == want, (d, limit)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        left = leftovers(g, state)
        assert left["dirs"] == [rec["id"]] and left["taps"] and left["sessions"], left
        assert left["cgroups"] == rec["cgroups"], left
        r = vmlaunch("gc", "--state-dir", state, "--pool", POOL)
        assert r.returncode == 0 and rec["id"].encode() in r.stderr, r.stderr
        assert leftovers(g, state) == CLEAN
    finally:
        p.kill()


def test_gc_after_kill_9_of_the_monitor(env):
    g, vmlaunch, vm_args, state, up = env
    r = vmlaunch("start", *vm_args(), "--json")
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)
    os.kill(started["monitor_pid"], signal.SIGKILL)

    def states():
        return [x["state"] for x in json.loads(vmlaunch("ls", "--state-dir", state,
                                                        "--json").stdout)]
    wait_until(lambda: states() == ["orphaned"], 30, f"not orphaned: {states()}")
    r = vmlaunch("gc", "--state-dir", state, "--pool", POOL)
    assert r.returncode == 0, r.stderr
    assert leftovers(g, state) == CLEAN


# A hostile guest agent (busybox sh in place of airlock-agent): it greets and answers the set-up
# (pings, the CA bundle's get and put, configure) as the real agent does, then answers the first exec with an
# endless flood of output for a request the host never made.
HOSTILE_AGENT = r"""#!/bin/busybox sh
bb=/bin/busybox
dev=
while [ -z "$dev" ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$($bb cat "$p/name" 2>/dev/null)" = airlock.agent ] && dev=/dev/${p##*/}
  done
  [ -n "$dev" ] || $bb sleep 1
done
exec 3<>"$dev"
echo '{"event":"ready","uptime_ms":1}' >&3
while IFS= read -r line <&3; do
  id=$(echo "$line" | $bb sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"op":"exec"'*) while echo '{"id":4242,"stream":"stdout","data":"aGk="}' >&3; do :; done;;
    *'"op":"get"'*) echo "{\"id\":$id,\"error\":\"no such file\"}" >&3;;
    *) echo "{\"id\":$id,\"ok\":true}" >&3;;
  esac
done
"""


def hostile_image(tmp_path, agent):
    """The guest image with `agent` as /sbin/airlock-agent: a second cpio archive appended to the
    initramfs, which the kernel unpacks over the first."""
    src = os.path.realpath(os.path.join(IMAGE, "images", "default"))
    overlay, image = tmp_path / "hostile-overlay", tmp_path / "hostile-image"
    (overlay / "sbin").mkdir(parents=True)
    (overlay / "sbin" / "airlock-agent").write_text(agent)
    for path in (overlay / "sbin", overlay / "sbin" / "airlock-agent"):
        os.chmod(path, 0o755)
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=overlay,
                             input=b"sbin\nsbin/airlock-agent\n", capture_output=True,
                             check=True).stdout
    image.mkdir()
    os.symlink(os.path.join(src, "vmlinux"), image / "vmlinux")
    shutil.copy(os.path.join(src, "manifest.json"), image)
    with open(os.path.join(src, "initrd.img"), "rb") as f:
        (image / "initrd.img").write_bytes(f.read() + gzip.compress(archive))
    return str(image)


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_hostile_guest_agent(env, tmp_path):
    """The guest is hostile: its agent floods an exec with replies to no request. `vmlaunch
    exec` ends at once with a clear error, the monitor tears the VM down by itself (it does not
    ask that guest to shut down), and nothing is left: no VMM, tap, firewall element, session,
    lease, cgroup or directory."""
    g, vmlaunch, vm_args, state, up = env
    r = vmlaunch("start", *vm_args(image=hostile_image(tmp_path, HOSTILE_AGENT)), "--json",
                 timeout=180)
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)
    r = vmlaunch("exec", "--state-dir", state, started["id"], "--", "true", timeout=60)
    assert r.returncode == 125, r.stderr
    assert (b"vmlaunch: the guest agent broke the protocol: a reply to no request (id 4242)\n"
            in r.stderr), r.stderr
    deadline = time.time() + 30
    while time.time() < deadline and (process_alive(started["monitor_pid"]) or
                                      leftovers(g, state) != CLEAN):
        time.sleep(0.2)
    assert not process_alive(started["monitor_pid"])
    assert leftovers(g, state) == CLEAN


def test_firecracker_end_to_end(env):
    g, vmlaunch, vm_args, state, up = env
    if not shutil.which("firecracker") or not os.path.exists("/dev/kvm"):
        pytest.skip("firecracker is not on PATH (not packaged for Debian); its configuration "
                    "is covered by the unit tests")
    args = [a for a in vm_args() if a not in ("--accel", "tcg")]
    r = vmlaunch("run", "--backend", "firecracker", *args, "--json", "--", "uname", "-r")
    assert r.returncode == 0, r.stderr
    assert leftovers(g, state) == CLEAN


def test_credentials_in_a_microvm():
    """The README's credential demo, end to end: from inside a microVM on the root disk, git clone
    and the GitHub API with $GITHUB_TOKEN (a placeholder) reach a local GitHub-like server with
    real installation tokens the gateway minted through a GitHub App; the placeholder sent to
    another allowed host is blocked. The demo checks what the upstreams received and exits
    non-zero otherwise."""
    if not ROOTFS_IMAGE:
        pytest.skip("no root-disk image (built by the microvm.rootfs_image CTest fixture)")
    demo = os.path.join(os.environ["AIRLOCK_SOURCE"], "scripts", "demo", "vm_credentials_demo.py")
    r = subprocess.run(["/usr/bin/python3", demo], capture_output=True, text=True, timeout=400,
                       env=dict(os.environ, AIRLOCK_ROOTFS_IMAGE=ROOTFS_IMAGE))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "carrying the placeholder: 0" in r.stdout and "credential_leak_blocked" in r.stdout
    assert "the paste service received 0 request(s)" in r.stdout
