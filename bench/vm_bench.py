"""The measurements behind bench/vm_bench.sh (run inside its namespace)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

src = os.environ["AIRLOCK_SOURCE"]
sys.path.insert(0, os.path.join(src, "tests", "integration"))
from conftest import VMLAUNCH_BIN, Gateway  # noqa: E402
from dnsstub import DnsStub  # noqa: E402

POLICY = "version: v1\nname: bench\negress:\n  - {id: none, hosts: [example.test], ports: [443]}\n"


def main(boots, execs):
    dns = DnsStub()
    tmp = tempfile.mkdtemp(prefix="airlock-vmbench-")
    gw = Gateway(tmp, dns, policies={"bench": POLICY})
    state = os.path.join(tmp, "vmlaunch")
    image = os.environ.get("AIRLOCK_IMAGE_CACHE", "/var/cache/airlock")
    base = ["--policy", "bench", "--control", gw.control, "--state-dir", state, "--image", image,
            "--accel", os.environ.get("ACCEL", "auto"), "--memory", "256M"]
    rows = []
    try:
        subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
        for _ in range(boots):
            t0 = time.monotonic()
            r = subprocess.run([VMLAUNCH_BIN, "run", *base, "--json", "--", "true"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("vmlaunch run failed: " + r.stderr)
            wall = (time.monotonic() - t0) * 1000
            t = json.loads(r.stdout)["timings_ms"]
            t["wall"] = wall
            rows.append(t)
        r = subprocess.run([VMLAUNCH_BIN, "start", *base], capture_output=True, text=True,
                           check=True)
        vm = r.stdout.strip()
        round_trips = []
        for _ in range(execs):
            t0 = time.monotonic()
            subprocess.run([VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--", "true"],
                           check=True)
            round_trips.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], check=True,
                       capture_output=True)
        stop_ms = (time.monotonic() - t0) * 1000
    finally:
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", state], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        gw.stop()
        dns.close()

    def med(key):
        return statistics.median(r[key] for r in rows)
    launcher = statistics.median(r["launcher_setup"] + r["configure"] for r in rows)
    print(f"microVM timings, median of {boots} boots (QEMU microvm, accel {os.environ.get('ACCEL', 'auto')}):")
    print(f"  create-to-ready                {med('create_to_ready'):8.0f} ms")
    print(f"    launcher set-up + configure  {launcher:8.0f} ms   (lease, tap, nftables, gateway session, cgroup; agent configure)")
    print(f"    VMM start to agent ready     {med('boot'):8.0f} ms   (of which the guest kernel's own uptime: {med('guest_kernel'):.0f} ms)")
    print(f"  exec round trip (in `run`)     {med('exec_round_trip'):8.0f} ms")
    print(f"  teardown                       {med('teardown'):8.0f} ms   (guest power-off, VMM exit, give back)")
    print(f"  whole `vmlaunch run -- true`   {med('wall'):8.0f} ms")
    print(f"  `vmlaunch exec -- true` on a running VM (CLI, monitor, agent): median "
          f"{statistics.median(round_trips):.1f} ms, max {max(round_trips):.1f} ms over {execs}")
    print(f"  `vmlaunch stop`                {stop_ms:8.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
