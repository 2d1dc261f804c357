"""The measurements behind bench/vm_bench.sh (run inside its namespace): cold, restored and pooled
starts side by side in one run, idle and with both cores busy; exec round trips; RSS and PSS per
VM at 20 VMs, cold against restored; resume from standby; and the curve as concurrent starts
outrun the pool (pool hit, then restore). Printed, never asserted."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

src = os.environ["AIRLOCK_SOURCE"]
sys.path.insert(0, os.path.join(src, "tests", "integration"))
from conftest import VMLAUNCH_BIN, Gateway  # noqa: E402
from dnsstub import DnsStub  # noqa: E402

POLICY = "version: v1\nname: bench\negress:\n  - {id: none, hosts: [example.test], ports: [443]}\n"
ACCEL = os.environ.get("ACCEL", "tcg")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Bench:
    def __init__(self, tmp, gw):
        self.state = os.path.join(tmp, "vmlaunch")
        self.image = os.environ.get("AIRLOCK_IMAGE_CACHE", "/var/cache/airlock")
        self.shape = ["--state-dir", self.state, "--image", self.image, "--accel", ACCEL,
                      "--memory", "256M"]
        self.base = ["--policy", "bench", "--control", gw.control, *self.shape]

    def vmlaunch(self, *args, check=True):
        r = subprocess.run([VMLAUNCH_BIN, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            sys.exit(f"vmlaunch {args[0]} failed: {r.stderr}")
        return r

    def run(self, *extra):
        """One `vmlaunch run -- true`: its timings and its whole wall time."""
        t0 = time.monotonic()
        r = self.vmlaunch("run", *self.base, *extra, "--json", "--", "true")
        c = json.loads(r.stdout)
        t = c["timings_ms"]
        t["wall"] = (time.monotonic() - t0) * 1000
        t["start"] = c["start"]
        return t

    def pool(self, size):
        self.vmlaunch("pool", "fill", "--size", str(size), *self.shape)

    def ready(self):
        listed = json.loads(self.vmlaunch("pool", "ls", "--state-dir", self.state, "--json").stdout)
        return sum(p["ready"] for p in listed)

    def wait_pool(self, size, timeout=300):
        deadline = time.monotonic() + timeout
        while self.ready() < size and time.monotonic() < deadline:
            time.sleep(0.2)

    def starts(self, boots):
        """cold, restored and pooled `run -- true`, `boots` of each."""
        out = {}
        out["cold"] = [self.run("--cold") for _ in range(boots)]
        out["restored"] = [self.run() for _ in range(boots)]
        self.pool(2)
        pooled = []
        for _ in range(boots):
            self.wait_pool(2)
            pooled.append(self.run())
        self.pool(0)
        out["pooled"] = pooled
        return out

    def exec_round_trips(self, n):
        vm = self.vmlaunch("start", *self.base).stdout.strip()
        trips = []
        for _ in range(n):
            t0 = time.monotonic()
            self.vmlaunch("exec", "--state-dir", self.state, vm, "--", "true")
            trips.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        self.vmlaunch("stop", "--state-dir", self.state, vm)
        return trips, (time.monotonic() - t0) * 1000

    def memory(self, count, cold):
        """RSS and PSS (shared pages divided among their users) per VMM at `count` VMs."""
        extra = ["--cold"] if cold else []
        vms = [json.loads(self.vmlaunch("start", *self.base, *extra, "--json").stdout)
               for _ in range(count)]
        rss, pss = [], []
        for v in vms:
            rec = json.load(open(os.path.join(self.state, "vms", v["id"], "state.json")))
            with open(f"/proc/{rec['vmm_pid']}/smaps_rollup") as f:
                fields = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split()[-1] == "kB"}
            rss.append(fields["Rss"] / 1024)
            pss.append(fields["Pss"] / 1024)
        for v in vms:
            self.vmlaunch("stop", "--state-dir", self.state, v["id"])
        return statistics.median(rss), statistics.median(pss), sum(pss)

    def standby(self, n):
        """Suspend after 1 s idle; the next exec resumes: its round trip against a running VM's."""
        vm = self.vmlaunch("start", *self.base, "--standby-after", "1s").stdout.strip()
        resumed = []
        for _ in range(n):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listed = json.loads(self.vmlaunch("ls", "--state-dir", self.state, "--json").stdout)
                if any(x["id"] == vm and x["state"] == "standby" for x in listed):
                    break
                time.sleep(0.1)
            t0 = time.monotonic()
            self.vmlaunch("exec", "--state-dir", self.state, vm, "--", "true")
            resumed.append((time.monotonic() - t0) * 1000)
        self.vmlaunch("stop", "--state-dir", self.state, vm)
        return resumed

    def curve(self, pool_size, levels):
        """`run -- true` started k at once against a pool of `pool_size`: p50 and p90 of the
        wall time, and how each started."""
        rows = []
        for k in levels:
            self.pool(pool_size)
            self.wait_pool(pool_size)
            with ThreadPoolExecutor(max_workers=k) as ex:
                results = list(ex.map(lambda _: self.run(), range(k)))
            walls = [r["wall"] for r in results]
            kinds = {s: sum(1 for r in results if r["start"] == s) for s in ("pooled", "restored",
                                                                               "cold")}
            rows.append((k, pct(walls, 50), pct(walls, 90), kinds))
        self.pool(0)
        return rows


def busy_loops():
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]


def report_starts(title, starts):
    print(f"  {title}")
    print(f"    {'':34s} {'cold':>8s} {'restored':>9s} {'pooled':>8s}")

    def row(label, key):
        cells = [statistics.median(r[key] for r in starts[k]) if all(key in r for r in starts[k])
                 else float('nan') for k in ("cold", "restored", "pooled")]
        print(f"    {label:34s} {cells[0]:8.0f} {cells[1]:9.0f} {cells[2]:8.0f}")
    row("create-to-ready (ms)", "create_to_ready")
    row("whole `run -- true` (ms)", "wall")
    row("exec round trip in `run` (ms)", "exec_round_trip")
    row("teardown (ms)", "teardown")
    kinds = ("cold", "restored", "pooled")
    overhead = {k: statistics.median(r["wall"] - r["create_to_ready"] - r["exec_round_trip"]
                                     - r["teardown"] for r in starts[k]) for k in kinds}
    print("    launcher overhead (the whole run less create-to-ready, exec and teardown):"
          + ",".join(f" {k} {overhead[k]:.0f} ms" for k in kinds))
    med = {k: {f: statistics.median(r.get(f, 0) for r in starts[k])
               for f in ("launcher_setup", "configure")} for k in ("cold", "restored")}
    print(f"    within create-to-ready: the launcher's set-up before the VMM starts, cold"
          f" {med['cold']['launcher_setup']:.0f} ms, restored {med['restored']['launcher_setup']:.0f}"
          f" ms; the guest's personalisation (identity, CA, variables), cold"
          f" {med['cold']['configure']:.0f} ms, restored {med['restored']['configure']:.0f} ms")
    cold = statistics.median(r["create_to_ready"] for r in starts["cold"])
    for k in ("restored", "pooled"):
        ready = statistics.median(r["create_to_ready"] for r in starts[k])
        print(f"    {k} create-to-ready is {cold / max(ready, 1):.1f}x faster than cold")


def main(boots, execs):
    dns = DnsStub()
    tmp = tempfile.mkdtemp(prefix="airlock-vmbench-")
    gw = Gateway(tmp, dns, policies={"bench": POLICY})
    b = Bench(tmp, gw)
    try:
        subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
        t0 = time.monotonic()
        b.vmlaunch("image", "snapshot", *b.shape)
        snapshot_ms = (time.monotonic() - t0) * 1000
        print(f"microVM timings (QEMU microvm, accel {ACCEL}, 256 MiB), medians of {boots} of each;"
              f" `image snapshot` took {snapshot_ms:.0f} ms")
        report_starts("idle", b.starts(boots))
        loops = busy_loops()
        try:
            report_starts("both cores busy (two busy loops)", b.starts(boots))
        finally:
            for p in loops:
                p.kill()
        trips, stop_ms = b.exec_round_trips(execs)
        print(f"  `vmlaunch exec -- true` on a running VM: median {statistics.median(trips):.1f} ms,"
              f" max {max(trips):.1f} ms over {execs}; `vmlaunch stop` {stop_ms:.0f} ms")
        resumed = b.standby(max(3, boots // 2))
        print(f"  resume from standby (`exec -- true` on a suspended VM, whole round trip):"
              f" median {statistics.median(resumed):.0f} ms, max {max(resumed):.0f} ms"
              f" over {len(resumed)}")
        for cold in (True, False):
            rss, pss, total = b.memory(20, cold)
            print(f"  20 VMs {'cold' if cold else 'restored'}: per VMM RSS {rss:.0f} MiB, PSS"
                  f" {pss:.0f} MiB (all 20: {total:.0f} MiB)")
        print("  concurrent `run -- true` against a pool of 5: k, p50 ms, p90 ms, how they started")
        for k, p50, p90, kinds in b.curve(5, [1, 5, 10, 20]):
            print(f"    {k:3d} {p50:8.0f} {p90:8.0f}   {kinds}")
    finally:
        subprocess.run([VMLAUNCH_BIN, "pool", "fill", "--size", "0", *b.shape],
                       capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", b.state], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        gw.stop()
        dns.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
