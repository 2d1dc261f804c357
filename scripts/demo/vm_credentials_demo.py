"""The credential demo, run inside the network namespace that run.sh creates (no route out): the
real airlock-gateway with a `github_app` credential, a local GitHub-like server (the App's token
endpoint, the API and a private git repository; tests/integration/credential_upstreams.py) that
mints installation tokens and checks what it receives, and a microVM on Debian's root disk (curl,
git). Inside the VM, $GITHUB_TOKEN is a placeholder: `git clone` and the API calls go out with
it, the gateway swaps in the real, freshly minted token on the way, and the same placeholder sent
to another allowed host is blocked. Exits non-zero if anything turns out otherwise."""
import json
import os
import shlex
import subprocess
import sys
import tempfile

src = os.environ["AIRLOCK_SOURCE"]
sys.path.insert(0, os.path.join(src, "tests", "integration"))
from conftest import CTL_BIN, VMLAUNCH_BIN, Gateway  # noqa: E402
from credential_upstreams import EchoApi, GitHubApi, rsa_key_pair  # noqa: E402
from dnsstub import DnsStub  # noqa: E402
from tls_upstreams import Pki  # noqa: E402

IMAGE = os.environ.get("AIRLOCK_ROOTFS_IMAGE", "/var/cache/airlock/rootfs")
GITHUB, ELSEWHERE = "10.79.1.3", "10.79.1.4"
APP_ID, INSTALLATION = 1001, 42

POLICY = """version: v1
name: agent
description: A coding agent that may use one GitHub organisation and one other API.
egress:
  - id: github-api
    hosts: [api.github.test]
    inspect: true
    credentials: [github]
  - id: github-git
    hosts: [github.test]
    inspect: true
    http:
      paths: ["/acme/**"]
    credentials: [github-git]
  - id: paste-service          # allowed, but no credential of ours may go there
    hosts: [paste.example.test]
    inspect: true
private:
  - id: demo-upstreams
    cidr: 10.79.1.0/29
    ports: [443]
"""


def main():
    for a in (GITHUB, ELSEWHERE):
        subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"], check=True)
    tmp = tempfile.mkdtemp(prefix="airlock-cred-demo-")
    os.makedirs(os.path.join(tmp, "pki"))
    pki = Pki(os.path.join(tmp, "pki"))
    private_key, public_key = rsa_key_pair()
    key_file = os.path.join(tmp, "github-app.pem")
    with open(key_file, "wb") as f:
        f.write(private_key)
    os.chmod(key_file, 0o600)
    github = GitHubApi(GITHUB, 443, *pki.leaf("github", ["api.github.test", "github.test",
                                                           GITHUB]),
                       app_id=APP_ID, public_key=public_key, installation_id=INSTALLATION).start()
    github.make_repo("acme", "private", files={"README.md": "acme's private repository\n"})
    paste = EchoApi(ELSEWHERE, 443, *pki.leaf("paste", ["paste.example.test"])).start()
    dns = DnsStub(port=5353)  # not 53: the test suite runs this beside its own stub
    dns.set("api.github.test", [("A", GITHUB, 60)])
    dns.set("github.test", [("A", GITHUB, 60)])
    dns.set("paste.example.test", [("A", ELSEWHERE, 60)])
    app = f"""    source: github_app
    api_url: https://{GITHUB}
    app_id: {APP_ID}
    installation_id: {INSTALLATION}
    key_file: {key_file}
"""
    gw = Gateway(tmp, dns, policies={"agent": POLICY}, extra_config=f"""tls:
  upstream_ca_file: {pki.ca_cert}
credentials:
  github:
{app}    placeholder: {{env: GITHUB_TOKEN, prefix: ghp_}}
    inject: [{{header: Authorization, value: "token {{token}}"}}]
  github-git:
{app}    placeholder: {{env: GIT_PASSWORD, prefix: ghp_}}
    inject: [{{header: Authorization, value: "Basic {{base64(x-access-token:{{token}})}}"}}]
""")
    gw.serve_links()
    state = os.path.join(tmp, "vmlaunch")
    vm = None
    ok = True
    try:
        subprocess.run([VMLAUNCH_BIN, "net", "install"], check=True)
        print("$ vmlaunch start --policy agent --rootfs   (Debian's curl and git on the disk)")
        r = subprocess.run([VMLAUNCH_BIN, "start", "--policy", "agent", "--control", gw.control,
                            "--state-dir", state, "--image", IMAGE, "--rootfs", "--memory",
                            "512M", "--ttl", "10m", "--json"], capture_output=True, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            sys.exit(1)
        info = json.loads(r.stdout)
        vm = info["id"]
        print(f"  -> {vm}, gateway session {info['session']}")

        def inside(title, script):
            print(f"\n[{vm}]$ {title}")
            r = subprocess.run([VMLAUNCH_BIN, "exec", "--state-dir", state, "--timeout", "60s",
                                vm, "--", "sh", "-c", script], capture_output=True, text=True)
            out = (r.stdout + r.stderr).strip()
            for line in out.splitlines():
                print("    " + line)
            print(f"    (exit status {r.returncode})")
            return r.returncode, out

        inside("echo $GITHUB_TOKEN | cut -c1-8; echo ${#GITHUB_TOKEN} characters   (what the "
               "sandbox holds; shown cut short)",
               "echo \"$GITHUB_TOKEN\" | cut -c1-8; echo ${#GITHUB_TOKEN} characters")
        placeholder = subprocess.run([VMLAUNCH_BIN, "exec", "--state-dir", state, vm, "--",
                                      "printenv", "GITHUB_TOKEN"], capture_output=True,
                                     text=True).stdout.strip()
        code, out = inside(
            "git clone https://x-access-token:$GIT_PASSWORD@github.test/acme/private.git",
            "cd /root && git clone -q https://x-access-token:$GIT_PASSWORD@github.test/acme/"
            "private.git && cat private/README.md")
        ok &= code == 0 and "acme's private repository" in out
        code, out = inside("curl -H \"Authorization: token $GITHUB_TOKEN\" "
                           "https://api.github.test/user",
                           "curl -sS -H \"Authorization: token $GITHUB_TOKEN\" "
                           "https://api.github.test/user")
        ok &= code == 0 and '"login"' in out
        code, out = inside("curl -H \"Authorization: Bearer $GITHUB_TOKEN\" "
                           "https://paste.example.test/upload   (allowed host, wrong place)",
                           "curl -sS -i -H \"Authorization: Bearer $GITHUB_TOKEN\" "
                           "https://paste.example.test/upload | grep -iE '^HTTP/|^x-airlock-"
                           "reason|\"hint\"'")
        ok &= "credential_leak_blocked" in out

        minted = set(github.issued_tokens)
        # What the sandbox's requests carried (the gateway's own app-JWT calls aside).
        received = [a for a in github.authorizations if a and not a.startswith("Bearer ey")]
        print(f"\nGitHub minted {len(minted)} installation token(s) for the app "
              f"(app JWTs checked: {sum(1 for t in github.token_requests if t['status'] == 201)})")
        used = [a for a in received if any(t in a or t in _basic(a) for t in minted)]
        print(f"GitHub received {len(received)} authorised request(s); carrying a minted token: "
              f"{len(used)}; carrying the placeholder: "
              f"{sum(1 for a in received if placeholder[4:] in a + _basic(a))}")
        print(f"the paste service received {len(paste.requests)} request(s)")
        ok &= bool(used) and len(used) == len(received) and not paste.requests
        ok &= placeholder.startswith("ghp_") and all(placeholder not in t for t in minted)
        print(f"\n$ vmlaunch stop {vm}")
        subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], check=True)
        vm = None
        gw.stop()
        print(f"\n$ airlockctl audit query --table --session {info['session']} {gw.audit}")
        subprocess.run([CTL_BIN, "audit", "query", "--table", "--session", info["session"],
                        gw.audit], check=True)
        audit = open(gw.audit).read()
        ok &= all(t not in audit for t in minted) and placeholder[4:] not in audit
        print("\nno minted token and no placeholder in the audit log:",
              all(t not in audit for t in minted) and placeholder[4:] not in audit)
        if not ok:
            print("demo: the credential broker did not behave as shown", file=sys.stderr)
            sys.exit(1)
    finally:
        if vm:
            subprocess.run([VMLAUNCH_BIN, "stop", "--state-dir", state, vm], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "gc", "--state-dir", state], capture_output=True)
        subprocess.run([VMLAUNCH_BIN, "net", "uninstall"], capture_output=True)
        gw.stop()
        github.stop()
        paste.stop()
        dns.close()
        print(f"(demo files: {shlex.quote(tmp)})")


def _basic(value):
    import base64
    try:
        return base64.b64decode(value.split()[1]).decode() if value.lower().startswith(
            "basic ") else ""
    except ValueError:
        return ""


if __name__ == "__main__":
    main()
