"""Installing as a service: `cmake --install` into a staging root puts the programs, the guest
agent, a commented /etc/airlock/airlock.yaml, the policies and the systemd units in place; the
units pass `systemd-analyze verify`; and the installed gateway, started with the installed
default configuration (in a private mount namespace, so the staging root stands at /etc/airlock
and nothing of the host's is touched), answers a request, tells systemd it is ready, reloading
and stopping, and exits 0."""
import os
import shutil
import socket
import subprocess

import pytest

from conftest import BUILD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = ["airlock-gateway.service", "vmlaunch-gc.service", "vmlaunch-gc.timer"]

# Runs inside `unshare --mount`: the staged /etc/airlock over the real one, empty state, log and
# runtime directories, then the installed gateway with the installed configuration.
SCRIPT = r"""
set -eu
stage=$1
mount --bind "$stage/etc/airlock" /etc/airlock
for d in /var/lib/airlock /var/log/airlock /run/airlock; do mount -t tmpfs tmpfs "$d"; done
"$stage/usr/bin/airlock-gateway" --check-config
"$stage/usr/bin/airlock-gateway" > /run/airlock/gateway.log 2>&1 &
pid=$!
api() { curl -s --max-time 5 --unix-socket /run/airlock/control.sock "$@"; }
for i in $(seq 100); do api http://gw/v1/health > /dev/null && break; sleep 0.1; done
api -X POST -d '{"policy":"default","source":"127.0.0.1","token":false}' http://gw/v1/sessions \
  > /dev/null
echo "proxy: $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:3128 \
  http://example.test/)"
kill -HUP $pid
for i in $(seq 100); do grep -q 'event=policy.load' /run/airlock/gateway.log && break; sleep 0.1; done
kill -TERM $pid
status=0; wait $pid || status=$?
echo "exit: $status"
echo "audit:"; cat /var/log/airlock/audit.jsonl
echo "log:"; cat /run/airlock/gateway.log
"""


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    env = dict(os.environ, DESTDIR=str(root))
    subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], env=env, check=True,
                   capture_output=True)
    return str(root)


def test_install_puts_everything_in_place(stage):
    for path in ["usr/bin/airlock-gateway", "usr/bin/airlockctl", "usr/bin/vmlaunch",
                 "etc/airlock/airlock.yaml", "etc/airlock/policies/default.yaml",
                 "usr/share/airlock/policies/coding-agent.yaml", "usr/share/doc/airlock/README.md"]:
        assert os.path.isfile(os.path.join(stage, path)), path
    for unit in UNITS:
        assert os.path.isfile(os.path.join(stage, "usr/lib/systemd/system", unit)), unit
    if os.path.exists(os.path.join(BUILD, "vmlaunch", "guest", "airlock-agent")):
        assert os.access(os.path.join(stage, "usr/lib/airlock/guest/airlock-agent"), os.X_OK)
        assert os.path.isfile(os.path.join(stage, "usr/lib/airlock/guest/init.sh"))
    assert not os.path.exists(os.path.join(stage, "etc/airlock/policies/coding-agent.yaml")), \
        "only the deny-all default is enabled; the rest need credentials configured first"


def test_units_verify(stage, tmp_path):
    """Every directive known and valid, and every command there: the units are checked against
    this system's systemd, with /usr/bin read from the staging root."""
    units = []
    for u in UNITS:
        with open(os.path.join(stage, "usr/lib/systemd/system", u)) as f:
            text = f.read().replace("/usr/bin/", os.path.join(stage, "usr/bin") + "/")
        (tmp_path / u).write_text(text)
        units.append(str(tmp_path / u))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_the_installed_gateway_serves_with_the_installed_config(stage, tmp_path):
    created = [d for d in ("/etc/airlock", "/var/lib/airlock", "/var/log/airlock", "/run/airlock")
               if not os.path.exists(d)]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"airlock-test-notify-{os.getpid()}"
    notify.bind("\0" + name)
    notify.settimeout(0)
    try:
        for d in created:
            os.makedirs(d)  # mount points only; the mounts stay inside the private namespace
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                              SCRIPT, "script", stage], capture_output=True, text=True,
                             timeout=120, env=dict(os.environ, NOTIFY_SOCKET="@" + name))
    finally:
        for d in reversed(created):
            shutil.rmtree(d, ignore_errors=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "proxy: 403" in out.stdout, out.stdout  # decided by the installed deny-all default
    assert "exit: 0" in out.stdout, out.stdout
    audit, _, log = out.stdout.partition("audit:")[2].partition("log:")
    assert '"reason":"host_not_allowed"' in audit.replace(" ", ""), audit
    assert "level=info event=gateway.start" in log and "policies=default" in log, log
    assert "event=gateway.stop" in log, log
    states = []
    while True:
        try:
            states.append(notify.recv(4096).decode())
        except BlockingIOError:
            break
    notify.close()
    assert [s.split("\n")[0] for s in states] == \
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], states


def test_the_deb_holds_the_install_and_its_conffiles(tmp_path):
    out = subprocess.run(["cpack", "-G", "DEB", "-B", str(tmp_path)], cwd=BUILD,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    debs = [p for p in os.listdir(tmp_path) if p.endswith(".deb")]
    assert len(debs) == 1, os.listdir(tmp_path)
    deb = str(tmp_path / debs[0])
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for path in ["./usr/bin/airlock-gateway", "./etc/airlock/airlock.yaml",
                 "./usr/lib/systemd/system/airlock-gateway.service"]:
        assert path in files, files
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, str(control)], check=True)
    assert (control / "conffiles").read_text().split() == \
        ["/etc/airlock/airlock.yaml", "/etc/airlock/policies/default.yaml"]
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True,
                            text=True).stdout
    assert "nftables" in fields and "libssl3" in fields, fields
