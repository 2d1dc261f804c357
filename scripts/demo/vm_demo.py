"""The microVM demo, run inside the network namespace that run.sh creates (no route out): the
real airlock-gateway with the demo policy, a local API server and a stub DNS server standing in
for the internet, a canary on 169.254.169.254, vmlaunch's nftables table, and one microVM (QEMU
`microvm`, the guest image built by `vmlaunch image build`). Everything below runs *inside the
VM* through `vmlaunch exec`; then a snapshot of the image is made and a VM restored from it and
a pooled one each run a command; then the session's audit records are printed and the chain is
verified."""
import json
import os
import shlex
import subprocess
import sys
import tempfile

src = os.environ["AIRLOCK_SOURCE"]
sys.path.insert(0, os.path.join(src, "tests", "integration"))
from conftest import CTL_BIN, VMLAUNCH_BIN, Canaries, Gateway, RawHttpUpstream  # noqa: E402
from dnsstub import DnsStub  # noqa: E402

IMAGE = os.environ.get("AIRLOCK_IMAGE_CACHE", "/var/cache/airlock")


def fast_starts(gw, state):
    """A snapshot of the image, then a restored start and a pooled one: each its own machine."""
    shape = ["--state-dir", state, "--image", IMAGE]
    print("\n$ vmlaunch image snapshot   (one template boot, saved; `run` and `start` restore it"
          " from now on, `--cold` boots)")
    r = subprocess.run([VMLAUNCH_BIN, "image", "snapshot", *shape], capture_output=True,
                       text=True)
    for line in r.stderr.strip().splitlines():
        print("    " + line)
    if r.returncode != 0:
        sys.exit(1)
    script = "echo $(hostname) $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' ')"
    for kind in ("restored", "pooled"):
        if kind == "pooled":
            print("\n$ vmlaunch pool fill --size 1   (a restored VM kept ready, no network yet)")
            subprocess.run([VMLAUNCH_BIN, "pool", "fill", "--size", "1", *shape], check=True,
                           capture_output=True)
        print(f"\n$ vmlaunch run --policy demo -- sh -c '{script}'")
        r = subprocess.run([VMLAUNCH_BIN, "run", "--policy", "demo", "--control", gw.control,
                            *shape, "--json", "--", "sh", "-c", script],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            sys.exit(1)
        c = json.loads(r.stdout)
        print(f"    {c['stdout'].strip()}   (start: {c['start']}, ready in"
              f" {c['timings_ms']['create_to_ready']} ms; its own name and random bytes)")
    subprocess.run([VMLAUNCH_BIN, "pool", "fill", "--size", "0", *shape], capture_output=True)


def main():
    subprocess.run(["ip", "addr", "add", "10.79.0.2/32", "dev", "lo"], check=True)
    canaries = Canaries(["169.254.169.254"])
    upstream = RawHttpUpstream("10.79.0.2", 8080)
    dns = DnsStub()
    dns.set("api.example.test", [("A", "10.79.0.2", 60)])
    tmp = tempfile.mkdtemp(prefix="airlock-vm-demo-")
    policy = open(os.path.join(src, "scripts", "demo", "demo-policy.yaml")).read().replace(
        "cidr: 127.0.0.0/29", "cidr: 10.79.0.0/29")
    gw = Gateway(tmp, dns, policies={"demo": policy})
    gw.serve_links()
    state = os.path.join(tmp, "vmlaunch")
    vm = None
    try:
        subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
        print("$ vmlaunch start --policy demo")
        r = subprocess.run([VMLAUNCH_BIN, "start", "--policy", "demo", "--control", gw.control,
                            "--state-dir", state, "--image", IMAGE, "--ttl", "10m", "--json"],
                           capture_output=True, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            sys.exit(1)
        info = json.loads(r.stdout)
        vm = info["id"]
        t = info["timings_ms"]
        print(f"  -> {vm} at {info['guest']}, gateway session {info['session']}; ready in "
              f"{t['create_to_ready']} ms (launcher {t['launcher_setup']} ms, guest boot "
              f"{t['boot']} ms)")

        def inside(title, script):
            print(f"\n[{vm}]$ {title}")
            r = subprocess.run([VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--", "sh", "-c",
                                script], capture_output=True, text=True)
            for line in (r.stdout + r.stderr).strip().splitlines():
                print("    " + line)
            print(f"    (exit status {r.returncode})")

        gw_ip = info["guest"].rsplit(".", 1)[0] + "." + str(int(info["guest"].rsplit(".", 1)[1]) - 1)
        inside("uname -sr; ip -4 route   (its own kernel; the only route is the gateway)",
               "uname -sr; ip -4 route")
        inside("wget -qO- http://api.example.test:8080/v1/status   (allowed by the policy)",
               "wget -qO- http://api.example.test:8080/v1/status; echo")
        req = "GET http://{h}/ HTTP/1.1\\r\\nHost: {h}\\r\\nConnection: close\\r\\n\\r\\n"
        for host, note in (("pastebin.example", "a host the policy does not name"),
                           ("169.254.169.254", "the cloud metadata address")):
            inside(f"GET http://{host}/ via the proxy   ({note})",
                   f"printf '{req.format(h=host)}' | nc -w 5 {gw_ip} 3128 | "
                   "grep -E '^HTTP/|^X-Airlock-Reason|hint'")
        inside("GET http://169.254.169.254/ directly, ignoring the proxy   (captured by the "
               "firewall)",
               f"printf '{req.format(h='169.254.169.254').replace('http://169.254.169.254', '')}' | "
               "nc -w 5 169.254.169.254 80 | grep -E '^HTTP/|^X-Airlock-Reason'")
        inside("nslookup exfil.unknown.example   (a name the policy does not allow)",
               "nslookup exfil.unknown.example")
        print(f"\nupstream received {len(upstream.requests)} request(s): "
              f"{[r['target'] for r in upstream.requests]}")
        print(f"metadata canary was reached {len(canaries.hits)} time(s)")
        print(f"\n$ vmlaunch stop {vm}")
        subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], check=True)
        vm = None
        fast_starts(gw, state)
        gw.stop()
        print(f"\n$ airlockctl audit query --table --session {info['session']} {gw.audit}")
        subprocess.run([CTL_BIN, "audit", "query", "--table", "--session", info["session"],
                        gw.audit], check=True)
        print(f"\n$ airlockctl audit verify {gw.audit}")
        subprocess.run([CTL_BIN, "audit", "verify", gw.audit], check=True)
        if canaries.hits or len(upstream.requests) != 1:
            print("demo: unexpected traffic", file=sys.stderr)
            sys.exit(1)
    finally:
        if vm:
            subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", state], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        gw.stop()
        dns.close()
        print(f"(demo files: {shlex.quote(tmp)})")


if __name__ == "__main__":
    main()
