"""Fast microVM starts and concurrency, with real QEMU `microvm` guests under TCG: a snapshot
saved once and restored (each restored VM made unique: address, MAC, hostname, entropy, clock),
a session's restored VM held to its own session, the warm pool, standby and resume, and several
execs at once in one VM. Guest boots are few: one template per module, restores after that."""
import fcntl
import json
import os
import shutil
import struct
import subprocess
import termios
import time

import pytest

from conftest import VMLAUNCH_BIN, Gateway
import test_microvm
from test_microvm import CLEAN, IMAGE, POOL, ROOTFS_IMAGE, VM_POLICY, leftovers, wait_until

vm_upstreams = test_microvm.vm_upstreams  # (the fixture, shared with test_microvm.py)

pytestmark = pytest.mark.skipif(
    not IMAGE or not ROOTFS_IMAGE,
    reason="no guest image: the microVM tests run in the release build")

# The same network as VM_POLICY but web.test is not allowed: the second session's policy.
OTHER_POLICY = VM_POLICY.replace("name: vm\n", "name: vm-other\n").replace(
    "  - {id: web, hosts: [web.test], protocol: http, ports: [8080]}\n", "")
SHAPE = ["--memory", "512M", "--accel", "tcg", "--rootfs"]


@pytest.fixture(scope="module")
def snapshot():
    """The root-disk image's snapshot for SHAPE, made once for the module (one guest boot) and
    removed afterwards, so that other test files boot as they expect."""
    state = f"/tmp/airlock-snapshot-{os.getpid()}"
    r = subprocess.run([VMLAUNCH_BIN, "image", "snapshot", "--image", ROOTFS_IMAGE,
                        "--state-dir", state, *SHAPE], capture_output=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert b"snapshot qemu-" in r.stderr and b" saved in " in r.stderr, r.stderr
    image = os.path.realpath(os.path.join(ROOTFS_IMAGE, "images", "default"))
    try:
        yield os.path.join(image, "snapshots")
    finally:
        shutil.rmtree(os.path.join(image, "snapshots"), ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def fast_env(tmp_path, dns, vm_upstreams, snapshot):
    dns.set("web.test", [("A", "10.78.0.2", 60)])
    g = Gateway(str(tmp_path), dns, policies={"vm": VM_POLICY, "vm-other": OTHER_POLICY})
    g.serve_links()
    subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
    state = str(tmp_path / "run")

    def vmlaunch(*args, timeout=120, **kw):
        return subprocess.run([VMLAUNCH_BIN, *args], capture_output=True, timeout=timeout, **kw)

    def vm_args(policy="vm"):
        return ["--policy", policy, "--control", g.control, "--state-dir", state, "--pool", POOL,
                "--image", ROOTFS_IMAGE, *SHAPE]

    def ex(vm, script, *extra, **kw):
        return vmlaunch("exec", "--state-dir", state, *extra, vm, "--", "sh", "-c", script, **kw)
    try:
        yield g, vmlaunch, vm_args, ex, state, vm_upstreams
    finally:
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", state, "--pool", POOL],
                       capture_output=True)
        vms = os.path.join(state, "vms")
        for vm in os.listdir(vms) if os.path.isdir(vms) else []:
            subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        g.stop()


IDENTITY = ("cat /sys/class/net/eth0/address; hostname; busybox ip -4 -o addr show eth0 | awk '{print $4}';"
            " busybox ip route | awk '/^default/{print $3}'; head -c 16 /dev/urandom | od -An -tx1 |"
            " tr -d ' \\n'; echo; python3 -c 'import secrets; print(secrets.token_hex(16))';"
            " date +%s; echo $HTTP_PROXY")


def gateway_of(guest):
    """The host side of a guest's /30: its address minus one."""
    a, b, c, d = guest.split(".")
    return f"{a}.{b}.{c}.{int(d) - 1}"


def test_restored_vms_are_unique_and_held_to_their_own_sessions(fast_env):
    """Two VMs restored from one snapshot: each has its own MAC, hostname (its id), address,
    route, proxy, random bytes (the kernel's and python's) and the host's time; a command runs at
    once; each VM's traffic is its own session's: the first may reach web.test, the second (a
    policy without it) is refused, and a VM that takes the other's address gets nowhere."""
    g, vmlaunch, vm_args, ex, state, up = fast_env
    vms = []
    for policy in ("vm", "vm-other"):
        r = vmlaunch("start", *vm_args(policy), "--json", "--ttl", "10m")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["start"] == "restored", info
        vms.append(info)
    seen = []
    for info in vms:
        r = ex(info["id"], IDENTITY)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.decode().splitlines()
        assert len(lines) == 8, lines
        mac, host, addr, route, urandom, secret, clock, proxy = lines
        assert host == info["id"]
        assert mac == "52:41:" + ":".join(info["id"][3 + i:5 + i] for i in range(0, 8, 2))
        assert addr == info["guest"] + "/30"
        gateway = gateway_of(info["guest"])
        assert route == gateway and proxy == f"http://{gateway}:3128"
        assert abs(int(clock) - time.time()) < 30, "the restored clock is the host's"
        seen.append((mac, host, addr, urandom, secret))
    for a, b in zip(*seen):
        assert a != b, "two restored VMs share " + a
    # Each VM's traffic is its own session's.
    n = len(up["web"].requests)
    r = ex(vms[0]["id"], "curl -sS http://web.test:8080/from-a")
    assert r.stdout == b"hello GET /from-a", r.stderr
    r = ex(vms[1]["id"], "curl -sS -o /dev/null -w '%{http_code}' http://web.test:8080/from-b")
    assert r.stdout == b"403", r.stdout + r.stderr
    # The second VM takes the first's address: its packets are dropped before anything sees them.
    r = ex(vms[1]["id"], f"busybox ip addr flush dev eth0; busybox ip addr add {vms[0]['guest']}/30 dev eth0;"
                         f" busybox ip route add default via {gateway_of(vms[0]['guest'])};"
                         " curl -sS -m 5 http://web.test:8080/spoofed; echo rc=$?")
    assert b"rc=0" not in r.stdout, r.stdout
    assert [x["target"] for x in up["web"].requests[n:]] == ["/from-a"]
    recs = g.records()
    sessions = {info["guest"]: info["session"] for info in vms}
    opens = [x for x in recs if x["event"] == "connection.open" and x.get("host") == "web.test"]
    assert any(x["decision"] == "allow" and x["src"] == vms[0]["guest"] and
               x.get("session") == sessions[vms[0]["guest"]] for x in opens), opens
    assert any(x["decision"] == "deny" and x["src"] == vms[1]["guest"] and
               x.get("session") == sessions[vms[1]["guest"]] for x in opens), opens
    assert not any(x.get("session") == sessions[vms[0]["guest"]] and x.get("target", "").endswith(
        "/spoofed") for x in recs)
    for info in vms:
        assert vmlaunch("stop", "--state-dir", state, info["id"]).returncode == 0
    assert leftovers(g, state) == CLEAN


# The shape's limits as the guest sees them: its memory (kB), its CPUs, its writable space (kB).
LIMITS = ("awk '/MemTotal/{print $2}' /proc/meminfo; nproc; df -k / | awk 'NR==2{print $2}'")


def assert_shape_limits(out):
    """SHAPE's 512 MiB (less what the kernel keeps), one vCPU, and the default 256 MiB overlay."""
    mem, cpus, overlay = (int(x) for x in out.split())
    assert 400 * 1024 < mem <= 512 * 1024 and cpus == 1, out
    assert abs(overlay - 256 * 1024) < 8 * 1024, out


def test_run_restores_by_default_and_cold_boots_on_request(fast_env):
    """`run` restores once a snapshot exists, `--cold` boots; a restored VM has the limits of its
    shape and its TTL ends it."""
    g, vmlaunch, vm_args, ex, state, up = fast_env
    r = vmlaunch("run", *vm_args(), "--json", "--", "sh", "-c", "hostname; " + LIMITS)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["start"] == "restored" and c["stdout"].startswith(c["vm"] + "\n"), c
    assert_shape_limits(c["stdout"].split("\n", 1)[1])
    r = vmlaunch("start", *vm_args(), "--json", "--ttl", "8s")
    assert r.returncode == 0, r.stderr
    short = json.loads(r.stdout)
    assert short["start"] == "restored"
    wait_until(lambda: not os.path.exists(os.path.join(state, "vms", short["id"])), 60,
               "the restored VM outlived its TTL")
    r = vmlaunch("run", *vm_args(), "--cold", "--json", "--", "sh", "-c", "hostname", timeout=180)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["start"] == "cold" and c["stdout"] == c["vm"] + "\n", c
    assert leftovers(g, state) == CLEAN


def monitor_request(state, vm, request):
    """One request to a VM's monitor, as vmlaunch sends it; the final reply."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(state, "vms", vm, "monitor.sock"))
    s.sendall((json.dumps(request) + "\n").encode())
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data.splitlines()[-1])


def test_pool_take_refill_and_gc(fast_env):
    """A pool of two restored, network-less VMs: `run` takes one (attached to its own session,
    with its own address), the pool refills in the background, a taken VM refuses a second
    attach and a retire, and after kill -9 of a pooled VM's monitor `gc` gives back what it
    held."""
    g, vmlaunch, vm_args, ex, state, up = fast_env
    shape = [a for a in vm_args() if a not in ("--policy", "vm")]
    r = vmlaunch("pool", "fill", "--size", "2", *shape, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"2 of 2 ready" in r.stderr, r.stderr

    def pooled():
        listed = json.loads(vmlaunch("ls", "--state-dir", state, "--json").stdout)
        return sorted(x["id"] for x in listed if x["state"] == "pooled")
    before = pooled()
    assert len(before) == 2
    # Pooled VMs hold no address, session or firewall element yet.
    assert g.api("GET", "/v1/sessions")[1]["sessions"] == []
    links = subprocess.run(["nft", "list", "set", "inet", "airlock", "links"],
                           capture_output=True, text=True).stdout
    assert "alvm-" not in links, links

    r = vmlaunch("run", *vm_args(), "--json", "--", "sh", "-c",
                 "hostname; busybox ip -4 -o addr show eth0 | awk '{print $4}'; echo $AIRLOCK_SESSION;"
                 " curl -sS http://web.test:8080/pooled")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["start"] == "pooled" and c["vm"] in before, c
    host, addr, session, body = c["stdout"].splitlines()
    assert host == c["vm"] and addr.startswith("100.98.0.") and body == "hello GET /pooled"
    assert any(x["event"] == "session.create" and x.get("session") == session and
               x.get("src") == addr.split("/")[0] for x in g.records())
    # The taken VM is gone after its run; the pool is back to two (a new one).
    wait_until(lambda: len(pooled()) == 2 and c["vm"] not in pooled(), 120,
               "the pool did not refill")

    # A VM taken by `start` is attached once: a second attach is refused, and a shrinking pool
    # cannot retire it. It takes the taker's standby settings.
    standby_dir = os.path.join(state, "standby-taken")
    r = vmlaunch("start", *vm_args(), "--json", "--standby-after", "1s",
                 "--standby-dir", standby_dir)
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)
    assert started["start"] == "pooled"
    reply = monitor_request(state, started["id"], {"op": "attach", "policy": "vm-other",
                                                   "control_socket": g.control})
    assert "taken already" in reply.get("error", ""), reply
    reply = monitor_request(state, started["id"], {"op": "retire"})
    assert "taken already" in reply.get("error", ""), reply
    assert_shape_limits(ex(started["id"], LIMITS).stdout.decode())

    def taken():
        return json.load(open(os.path.join(state, "vms", started["id"], "state.json")))
    wait_until(lambda: taken()["state"] == "standby", 60, "the taken VM was not suspended")
    assert taken()["standby_file"].startswith(standby_dir + "/"), taken()
    assert ex(started["id"], "hostname").stdout.decode().strip() == started["id"]
    assert vmlaunch("stop", "--state-dir", state, started["id"]).returncode == 0

    # kill -9 of a pooled VM's monitor: gc gives back its VMM, tap, cgroup and directory.
    wait_until(lambda: len(pooled()) == 2, 120, "the pool did not refill")
    victim = pooled()[0]
    rec = json.load(open(os.path.join(state, "vms", victim, "state.json")))
    os.kill(rec["owner_pid"], 9)
    wait_until(lambda: not os.path.exists(f"/proc/{rec['owner_pid']}"), 30, "monitor lives")
    r = vmlaunch("gc", "--state-dir", state, "--pool", POOL)
    assert victim.encode() in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(state, "vms", victim))
    assert f"al{victim}" not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                               text=True).stdout
    # Emptying the pool stops the rest.
    r = vmlaunch("pool", "fill", "--size", "0", *shape)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 60
    while leftovers(g, state) != CLEAN and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(g, state) == CLEAN


def test_parallel_execs_and_detached_jobs(fast_env):
    """Three execs at once in one VM, each waiting for the other two to have started (so they
    can only finish if they run side by side); a client that stops reading holds up nobody; a
    detached job outlives its exec, is listed, waited for and killed; another is killed by
    stop."""
    g, vmlaunch, vm_args, ex, state, up = fast_env
    r = vmlaunch("start", *vm_args(), "--json", "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    vm = json.loads(r.stdout)["id"]
    cmd = [VMLAUNCH_BIN, "exec", "--state-dir", state, "--timeout", "60s", "--json", vm, "--",
           "sh", "-c"]
    barrier = ("touch /tmp/{0}; until [ -e /tmp/a ] && [ -e /tmp/b ] && [ -e /tmp/c ];"
               " do sleep 0.05; done; echo {0}")
    procs = {n: subprocess.Popen([*cmd, barrier.format(n)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for n in "abc"}
    for n, p in procs.items():
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        c = json.loads(out)
        assert c["stdout"] == f"{n}\n" and c["timed_out"] is False, c

    # A client that stops reading (its output goes to a pipe nobody reads) holds nobody up:
    # once the pipe is full, another exec in the same VM is still served, and the stalled one is
    # let go, its command cancelled, when the monitor's queue for it is full.
    stalled = subprocess.Popen([VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--",
                                "head", "-c", "60000000", "/dev/zero"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        def pipe_full():
            return struct.unpack("i", fcntl.ioctl(stalled.stdout.fileno(), termios.FIONREAD,
                                                  b"\0\0\0\0"))[0] >= 65536
        wait_until(pipe_full, 60, "the stalled client's pipe did not fill")
        assert ex(vm, "echo served", timeout=60).stdout == b"served\n"
        wait_until(lambda: ex(vm, "busybox pgrep -f 'head -c 6000000[0]' || echo none").stdout == b"none\n",
                   60, "the stalled client's command was not cancelled")
    finally:
        stalled.kill()
        stalled.wait()

    r = vmlaunch("exec", "--state-dir", state, "--detach", "--json", vm, "--", "sh", "-c",
                 "echo started; exec sleep 600")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["job"] == "job-1" and job["running"] is True
    # It outlives its exec: still there after more execs.
    assert ex(vm, f"kill -0 {job['pid']} && cat {job['output']}").stdout == b"started\n"
    listed = json.loads(vmlaunch("job", "ls", "--state-dir", state, vm).stdout)
    assert [(j["job"], j["running"]) for j in listed] == [("job-1", True)]
    r = vmlaunch("job", "wait", "--state-dir", state, "--timeout", "1s", vm, "job-1")
    assert r.returncode == 1 and json.loads(r.stdout)["running"] is True
    assert vmlaunch("job", "kill", "--state-dir", state, vm, "job-1").returncode == 0
    r = vmlaunch("job", "wait", "--state-dir", state, "--timeout", "30s", vm, "job-1")
    assert json.loads(r.stdout)["signal"] == 9, r.stdout
    assert ex(vm, f"kill -0 {job['pid']} 2>/dev/null || echo gone").stdout == b"gone\n"
    # A second job is still running when the VM stops: stop ends it with the VM.
    r = vmlaunch("exec", "--state-dir", state, "--detach", vm, "--", "sleep", "600")
    assert r.stdout == b"job-2\n", r.stderr
    assert vmlaunch("stop", "--state-dir", state, vm).returncode == 0
    assert leftovers(g, state) == CLEAN


def test_standby_and_resume(fast_env, snapshot):
    """A VM idle for --standby-after is suspended to disk (its VMM gone; tap, firewall elements
    and gateway session kept) and the next exec resumes it with a file, a background process and
    that process's environment intact, and the clock right, even with the snapshot it was
    restored from gone meanwhile; `stop` then gives everything back."""
    g, vmlaunch, vm_args, ex, state, up = fast_env
    standby_dir = os.path.join(state, "standby")
    r = vmlaunch("start", *vm_args(), "--json", "--standby-after", "2s", "--standby-dir",
                 standby_dir)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    vm = info["id"]
    r = vmlaunch("exec", "--state-dir", state, "--detach", "--json", "--env", "MARK=kept", vm,
                 "--", "sleep", "600")
    job = json.loads(r.stdout)
    assert ex(vm, "echo before > /root/f").returncode == 0

    def record():
        return json.load(open(os.path.join(state, "vms", vm, "state.json")))
    wait_until(lambda: record()["state"] == "standby", 60, "the idle VM was not suspended")
    rec = record()
    assert rec["vmm_pid"] == 0 and os.path.getsize(rec["standby_file"]) > 0
    assert vm not in subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True,
                                    text=True).stdout
    listed = json.loads(vmlaunch("ls", "--state-dir", state, "--json").stdout)
    assert [(x["id"], x["state"]) for x in listed] == [(vm, "standby")]
    # Kept while suspended: the tap, the firewall elements and the gateway session.
    assert f"al{vm}" in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                       text=True).stdout
    assert [s["id"] for s in g.api("GET", "/v1/sessions")[1]["sessions"]] == [info["session"]]

    # Two execs at once wake it: one resume, both served. The snapshot is out of the way (as
    # when `image snapshot` replaces it): a suspended VM's state holds all of its memory.
    aside = snapshot + ".aside"
    os.rename(snapshot, aside)
    try:
        cmd = [VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--", "sh", "-c"]
        script = (f"cat /root/f; kill -0 {job['pid']} && echo running;"
                  f" tr '\\0' '\\n' < /proc/{job['pid']}/environ | grep MARK; date +%s")
        procs = [subprocess.Popen([*cmd, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            before, running, mark, clock = out.decode().splitlines()
            assert (before, running, mark) == ("before", "running", "MARK=kept")
            assert abs(int(clock) - time.time()) < 30, "the resumed clock is the host's"
    finally:
        os.rename(aside, snapshot)
    assert record()["state"] == "running" and record()["standby_file"] == ""
    assert not os.listdir(standby_dir)
    assert vmlaunch("stop", "--state-dir", state, vm).returncode == 0
    assert leftovers(g, state) == CLEAN
