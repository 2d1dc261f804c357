"""The gateway demo, run inside the network namespace that run.sh creates: real airlock-gateway,
real curl, local API servers standing in for the internet (one over HTTP, one over HTTPS with a
throw-away CA of its own), a stub DNS server, and a canary on 169.254.169.254 that would show
any request reaching the metadata address."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

src = os.environ["AIRLOCK_SOURCE"]
sys.path.insert(0, os.path.join(src, "tests", "integration"))
from conftest import CTL_BIN, Canaries, Gateway, RawHttpUpstream, curl  # noqa: E402
from dnsstub import DnsStub  # noqa: E402
from tls_upstreams import HttpsUpstream, Pki  # noqa: E402


def show(title, status, body):
    print(f"\n$ {title}\n  -> HTTP {status}")
    try:
        j = json.loads(body)
        print("     reason:", j["reason"])
        print("     hint:  ", j["hint"])
    except ValueError:
        print("    ", body.decode(errors="replace")[:120])


def main():
    canaries = Canaries(["169.254.169.254"])
    upstream = RawHttpUpstream("127.0.0.2", 8080)
    dns = DnsStub()
    dns.set("api.example.test", [("A", "127.0.0.2", 60)])
    dns.set("rebind.example.test", [("A", "169.254.169.254", 0)])
    dns.set("api.github.test", [("A", "127.0.0.3", 60)])
    tmp = tempfile.mkdtemp(prefix="airlock-demo-")
    pki_dir = tempfile.mkdtemp(prefix="airlock-demo-pki-")
    pki = Pki(pki_dir)
    github = HttpsUpstream("127.0.0.3", 443, *pki.leaf("github", ["api.github.test"]))
    policy = open(os.path.join(src, "scripts", "demo", "demo-policy.yaml")).read()
    gw = Gateway(tmp, dns, policies={"demo": policy},
                 extra_config=f"tls:\n  upstream_ca_file: {pki.ca_cert}\n")
    try:
        s = gw.session("demo", source=None, token=True)
        user = f"{s['id']}:{s['token']}"
        print(f"gateway up; session {s['id']} runs policy 'demo' (token shown once, kept hashed)")
        show("curl --proxy-user SESSION:TOKEN http://api.example.test:8080/v1/status",
             *curl("http://api.example.test:8080/v1/status", user=user))
        show("curl ... -X DELETE http://api.example.test:8080/v1/status",
             *curl("-X", "DELETE", "http://api.example.test:8080/v1/status", user=user))
        show("curl ... http://pastebin.example/upload",
             *curl("http://pastebin.example/upload", user=user))
        show("curl ... http://169.254.169.254/latest/meta-data/iam/",
             *curl("http://169.254.169.254/latest/meta-data/iam/", user=user))
        show("curl ... http://0xA9FEA9FE/latest/meta-data/   (the same address, in hex)",
             *curl("http://0xA9FEA9FE/latest/meta-data/", user=user))
        show("curl ... http://api.example.test:8080/  with no session",
             *curl("http://api.example.test:8080/"))
        print("\n$ airlockctl ca export --config airlock.yaml   (what sandboxes trust; no key)")
        ca = os.path.join(tmp, "gateway-ca.crt")
        with open(ca, "wb") as f:
            f.write(subprocess.run([CTL_BIN, "ca", "export", "--config", gw.config],
                                   check=True, capture_output=True).stdout)
        print("  ", open(ca).read().splitlines()[0], "...")
        show("curl --cacert gateway-ca.crt ... https://api.github.test/repos/acme/widgets",
             *curl("--cacert", ca, "https://api.github.test/repos/acme/widgets", user=user))
        show("curl ... -X POST https://api.github.test/repos/acme/widgets   (inside TLS)",
             *curl("--cacert", ca, "-X", "POST", "https://api.github.test/repos/acme/widgets",
                   user=user))
        show("curl ... https://api.github.test/repos/other/secrets   (inside TLS)",
             *curl("--cacert", ca, "https://api.github.test/repos/other/secrets", user=user))
        print(f"\nupstream received {len(upstream.requests)} request(s): "
              f"{[r['target'] for r in upstream.requests]}")
        print(f"HTTPS upstream received {len(github.requests)} request(s): "
              f"{[r.method + ' ' + r.target for r in github.requests]}")
        print(f"metadata canary was reached {len(canaries.hits)} time(s)")
        gw.stop()
        print("\n$ airlockctl audit query --table", gw.audit)
        subprocess.run([CTL_BIN, "audit", "query", "--table", gw.audit], check=True)
        print("\n$ airlockctl audit verify", gw.audit)
        subprocess.run([CTL_BIN, "audit", "verify", gw.audit], check=True)
        if canaries.hits or len(upstream.requests) != 1 or len(github.requests) != 1:
            print("demo: unexpected traffic", file=sys.stderr)
            sys.exit(1)
    finally:
        gw.stop()
        github.close()
        dns.close()
        shutil.rmtree(pki_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
