"""The audit log under stress and the gateway's lifecycle: kill -9 under traffic leaves a chain
that verifies and a connection.open for every connection a client saw accepted; an unwritable
log refuses new connections; reload is all-or-nothing and closes what the new policy forbids;
SIGTERM drains."""
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, CTL_BIN, DEFAULT_POLICY, curl, listen, raw_request, read_records


def verify(path):
    return subprocess.run([CTL_BIN, "audit", "verify", path], capture_output=True, text=True)


def test_kill_9_under_traffic(gateway):
    gateway.session()
    accepted = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", 3128), timeout=2)
                port = s.getsockname()[1]
                s.sendall(b"GET http://web.test:8080/load HTTP/1.1\r\nHost: web.test:8080\r\n"
                          b"Connection: close\r\n\r\n")
                data = s.recv(4096)
                if data.startswith(b"HTTP/1.1 200 "):
                    accepted.append(port)
                s.close()
            except OSError:
                return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    # Kill once traffic is flowing (a count of served requests, polled with a deadline).
    deadline = time.monotonic() + 30
    while len(accepted) <= 20 and time.monotonic() < deadline and any(t.is_alive()
                                                                       for t in threads):
        time.sleep(0.01)
    gateway.kill()  # SIGKILL mid-traffic
    stop.set()
    for t in threads:
        t.join()
    assert len(accepted) > 10
    out = verify(gateway.audit)
    assert out.returncode == 0, out.stdout + out.stderr
    recs = read_records(gateway.audit)
    opened = {r["src_port"] for r in recs
              if r["event"] == "connection.open" and r["decision"] == "allow"}
    missing = [p for p in accepted if p not in opened]
    assert missing == [], f"{len(missing)} accepted connections have no connection.open"
    gateway.log.close()
    gateway.start()  # restart on the same log: the chain continues
    assert verify(gateway.audit).returncode == 0


def test_unwritable_log_refuses_new_connections(tmp_path, dns, upstream):
    from conftest import Gateway
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    g = None
    try:
        g = Gateway(str(tmp_path), dns, extra_config="")
        g.stop()
        # Point the audit log at the small filesystem and start again.
        with open(g.config) as f:
            cfg = f.read().replace(g.audit, str(mnt / "audit.jsonl"))
        with open(g.config, "w") as f:
            f.write(cfg)
        g.audit = str(mnt / "audit.jsonl")
        g.log.close()
        g.start()
        g.session()
        assert curl("http://web.test:8080/before")[0] == 200
        filler = mnt / "filler"
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
        except OSError:
            pass  # the filesystem is full
        n = len(upstream.requests)
        # Records still fit in the log's last page for a while; keep going until writing fails.
        # A request whose record cannot be written waits (it is never served unrecorded); once
        # the log is known to be unwritable, new connections are refused with 503.
        results = {}
        for i in range(60):
            status, body = curl("--max-time", "2", f"http://web.test:8080/during{i}")
            results[f"/during{i}"] = status
            if status == 503:
                assert json.loads(body)["reason"] == "audit_unavailable"
                break
        assert 503 in results.values(), results
        served = {r["target"] for r in upstream.requests[n:]}
        for target, status in results.items():
            if status != 200:
                assert target not in served, f"{target} was served without an audit record"
        assert g.api("GET", "/v1/health")[0] == 503
        os.unlink(filler)  # space again: the log recovers and nothing queued was lost
        deadline = time.time() + 5
        while g.api("GET", "/v1/health")[0] != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert curl("http://web.test:8080/after")[0] == 200
        assert verify(g.audit).returncode == 0
        with open(g.log.name, errors="replace") as f:
            oplog = f.read()  # the operator heard of the failure, with its errno, and the recovery
        assert "level=error event=audit.write_failed" in oplog and " errno=28 " in oplog, oplog
        assert "event=audit.recovered" in oplog, oplog
    finally:
        if g:
            g.stop()
        subprocess.run(["umount", "-l", str(mnt)])


def test_reload_closes_what_the_new_policy_forbids(gateway):
    gateway.session()
    srv = listen("127.0.0.4", 9000)
    try:
        c = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
        gateway.write_policy("test", DEFAULT_POLICY.replace("raw.test", "other-raw.test"))
        gateway.proc.send_signal(signal.SIGHUP)
        assert c.recv(4096) == b"", "the tunnel the new policy forbids must be closed"
        c.close()
        recs = gateway.records(lambda r: any(x.get("reason") == "policy_reload" for x in r))
        assert any(r["event"] == "policy.load" and r["trigger"] == "sighup" for r in recs)
        assert any(r["event"] == "connection.close" and r["reason"] == "policy_reload"
                   for r in recs)
        resp = raw_request(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 403 ")
        assert curl("http://web.test:8080/")[0] == 200, "allowed traffic keeps flowing"
    finally:
        srv.close()


def test_invalid_reload_keeps_the_old_policy(gateway):
    gateway.session()
    gateway.write_policy("test", DEFAULT_POLICY + "\nbogus_key: 1\n")
    status, body = gateway.api("POST", "/v1/reload")
    assert status == 400
    assert "test.yaml:" in body["error"] and "unknown key 'bogus_key'" in body["error"]
    assert curl("http://web.test:8080/")[0] == 200
    recs = gateway.records(lambda r: any(x["event"] == "policy.reject" for x in r))
    reject = [r for r in recs if r["event"] == "policy.reject"][0]
    assert "bogus_key" in reject["errors"]


def test_slowloris_is_cut_off_and_others_are_served(tmp_path, dns, upstream):
    from conftest import Gateway
    g = Gateway(str(tmp_path), dns, extra_config="limits:\n  header_timeout_ms: 800\n")
    try:
        g.session()
        slow = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        slow.sendall(b"GET http://web.test:8080/ HTTP/1.1\r\n")
        start = time.time()
        for _ in range(3):
            assert curl("http://web.test:8080/")[0] == 200
        try:
            slow.sendall(b"X-A: 1\r\n")
        except OSError:
            pass
        data = slow.recv(4096)
        assert data.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in data
        assert time.time() - start < 5
        slow.close()
    finally:
        g.stop()


# The sanitizers' runtime probes memory through a pipe(2) (IsAccessibleMemoryRange): at the
# open-file limit that fails, and UBSan's vptr check then reports every virtual call as one on
# an invalid object. The release build runs this test.
@pytest.mark.skipif("asan" in os.path.basename(os.path.normpath(BUILD)),
                    reason="the sanitizer runtime itself needs descriptors")
def test_out_of_descriptors_pauses_accepting_and_recovers(gateway, upstream):
    """At the open-file limit accept(2) fails with EMFILE and the pending connection stays in
    the backlog: the listener pauses (said once per pause in the operator's log) instead of
    retrying at once forever, and serves again once descriptors are free."""
    gateway.session()
    assert "open_files=" in open(gateway.log.name).read()  # the limit in force, at start
    pid = gateway.proc.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={in_use + 4}:{in_use + 4}"],
                   check=True)
    idle = []
    try:
        for _ in range(12):  # more than the gateway can accept
            idle.append(socket.create_connection(("127.0.0.1", 3128), timeout=5))
        log = gateway.log.name
        deadline = time.time() + 10
        while "gateway.accept_paused" not in open(log).read() and time.time() < deadline:
            time.sleep(0.05)
        text = open(log).read()
        assert "gateway.accept_paused" in text and "listener=proxy" in text
        assert "Error from accept" not in text  # libevent's own warning: the busy loop
        # While paused, the pending connections wait; once ours close, they are served again.
        for s in idle:
            s.close()
        idle = []
        deadline = time.time() + 10
        while time.time() < deadline and curl("http://web.test:8080/")[0] != 200:
            time.sleep(0.05)
        assert curl("http://web.test:8080/")[0] == 200
        # Said once per episode (an accept that works ends one), not once per failed accept,
        # and each end said too.
        text = open(log).read()
        resumed = text.count("event=gateway.accept_resumed listener=proxy pauses=")
        assert resumed >= 1 and text.count("gateway.accept_paused") <= resumed + 1
        assert "Error from accept" not in text
    finally:
        for s in idle:
            s.close()


def test_sigterm_drains_and_logs_stop(gateway):
    gateway.session()
    assert curl("http://web.test:8080/")[0] == 200
    gateway.stop(signal.SIGTERM)
    assert gateway.proc.returncode == 0
    recs = gateway.records()
    assert recs[0]["event"] == "gateway.start" and recs[-1]["event"] == "gateway.stop"
    assert verify(gateway.audit).returncode == 0
    gateway.start()


def test_audit_verify_reports_tampering_and_a_torn_tail(gateway, tmp_path):
    """A real audit log from the real gateway, then `airlockctl audit verify` on copies of it:
    one field of one record edited, a record deleted, two records swapped (each: exit 1, the
    line and what was done), and the last line cut short (exit 0, but reported as a torn last
    line, and the records before it counted)."""
    gateway.session()
    for path in ("/a", "/b", "/c"):
        assert curl(f"http://web.test:8080{path}")[0] == 200
    assert curl("http://unknown.test:8080/no")[0] == 403
    gateway.stop()  # SIGTERM: the log ends with gateway.stop, whole
    data = open(gateway.audit, "rb").read()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    n = len(lines)
    assert n >= 8, lines
    out = verify(gateway.audit)
    assert (out.returncode, out.stdout, out.stderr) == (
        0, f"ok: {n} records, seq 1..{n}, 1 file(s), chain intact\n", ""), out
    copies = tmp_path / "copies"
    copies.mkdir()

    def verify_copy(name, body):
        path = copies / name
        path.write_bytes(body)
        return str(path), verify(str(path))

    # An allowed connection in the middle of the log becomes a denied one.
    k = next(i for i, l in enumerate(lines) if b'"event":"connection.open"' in l and
             b'"decision":"allow"' in l and 0 < i < n - 2)
    edited = lines[k].replace(b'"decision":"allow"', b'"decision":"deny"', 1)
    assert edited != lines[k] and json.loads(edited)["decision"] == "deny"
    path, out = verify_copy("edited.jsonl", b"\n".join(lines[:k] + [edited] + lines[k + 1:])
                            + b"\n")
    assert out.returncode == 1 and out.stdout == "", out
    assert out.stderr == (
        f"{path}:{k + 2}: TAMPERED: prev does not match the previous line: a record before it "
        f"was edited, deleted or reordered\n"
        f"FAILED: the audit chain is broken (1 problem(s) in {n} records)\n"), out.stderr
    # A record deleted: the next one follows the wrong seq and the wrong hash. (Record i has
    # seq i + 1.)
    path, out = verify_copy("deleted.jsonl", b"\n".join(lines[:k] + lines[k + 1:]) + b"\n")
    assert out.returncode == 1 and out.stdout == "", out
    assert out.stderr == (
        f"{path}:{k + 1}: TAMPERED: seq {k + 2} follows seq {k}: records were deleted, "
        f"inserted or reordered\n"
        f"{path}:{k + 1}: TAMPERED: prev does not match the previous line: a record before it "
        f"was edited, deleted or reordered\n"
        f"FAILED: the audit chain is broken (2 problem(s) in {n - 1} records)\n"), out.stderr
    # Two records swapped.
    swapped = lines[:k] + [lines[k + 1], lines[k]] + lines[k + 2:]
    path, out = verify_copy("swapped.jsonl", b"\n".join(swapped) + b"\n")
    assert out.returncode == 1 and out.stdout == "", out
    assert out.stderr.startswith(
        f"{path}:{k + 1}: TAMPERED: seq {k + 2} follows seq {k}: records were deleted, "
        f"inserted or reordered\n"
        f"{path}:{k + 1}: TAMPERED: prev does not match the previous line"), out.stderr
    assert f"{path}:{k + 2}: TAMPERED: seq {k + 1} follows seq {k + 2}" in out.stderr
    assert out.stderr.endswith(f"FAILED: the audit chain is broken (6 problem(s) in {n} "
                               f"records)\n"), out.stderr
    # The tail cut in the middle of the last record (a crash mid-write): not tampering, but
    # reported, with the line and how much of it is left.
    cut = len(lines[-1]) // 2
    path, out = verify_copy("torn.jsonl", b"\n".join(lines[:-1]) + b"\n" + lines[-1][:cut])
    assert (out.returncode, out.stderr) == (0, ""), out
    assert out.stdout == (
        f"{path}:{n}: note: torn last line ({cut} bytes without a newline): a write cut short, "
        f"e.g. by a crash\n"
        f"ok: {n - 1} records, seq 1..{n - 1}, 1 file(s), chain intact\n"), out.stdout


def test_audit_query_and_tail(gateway):
    s = gateway.session()
    curl("http://web.test:8080/ok")
    curl("http://unknown.test:8080/no")
    gateway.records(lambda r: sum(x["event"] == "connection.open" for x in r) >= 2)
    q = subprocess.run([CTL_BIN, "audit", "query", "--decision", "deny", gateway.audit],
                       capture_output=True, text=True)
    denies = [json.loads(l) for l in q.stdout.splitlines()]
    assert [(r["event"], r["host"], r["reason"]) for r in denies] == \
        [("connection.open", "unknown.test", "host_not_allowed")]
    t = subprocess.run([CTL_BIN, "audit", "query", "--table", "--session", s["id"],
                        "--event", "http.request", gateway.audit], capture_output=True, text=True)
    lines = t.stdout.splitlines()
    assert lines[0].startswith("TS") and len(lines) == 2 and "web.test:8080 (web)" in lines[1]
    tail = subprocess.run([CTL_BIN, "audit", "tail", "-n", "2", gateway.audit],
                          capture_output=True, text=True)
    assert len(tail.stdout.splitlines()) == 2
    # -f follows new records until stopped. It starts following at some moment this test
    # cannot see, so the test polls: a request, then a short wait for its record on the pipe,
    # again until one arrives (with a deadline). Records before it started are not printed
    # (-n 0), and the first one it prints is one of these requests.
    follow = subprocess.Popen([CTL_BIN, "audit", "tail", "-n", "0", "-f", "--event",
                               "connection.open", gateway.audit], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        line = b""
        while not line and time.monotonic() < deadline:
            curl("http://web.test:8080/followed")
            if select.select([follow.stdout], [], [], 0.5)[0]:
                line = follow.stdout.readline()
        assert line, "audit tail -f printed nothing"
        rec = json.loads(line)
        assert (rec["event"], rec["host"], rec["decision"]) == \
            ("connection.open", "web.test", "allow"), rec
    finally:
        follow.kill()
        follow.wait()


def test_check_config(tmp_path):
    from conftest import GATEWAY_BIN
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "ok.yaml").write_text("version: v1\nname: ok\n")
    cfg = tmp_path / "airlock.yaml"
    cfg.write_text(f"policy_dir: {pol}\naudit: {{path: {tmp_path}/a.jsonl}}\n")
    ok = subprocess.run([GATEWAY_BIN, "--config", str(cfg), "--check-config"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr
    (pol / "bad.yaml").write_text("version: v1\nname: bad\negress:\n  - id: x\n    hosts: ['*']\n")
    bad_policy = subprocess.run([GATEWAY_BIN, "--config", str(cfg), "--check-config"],
                                capture_output=True, text=True)
    assert bad_policy.returncode == 1
    assert "bad.yaml:5:13: error: host pattern '*' would allow every host" in bad_policy.stderr
    cfg.write_text(f"policy_dir: {pol}\nworkerz: 2\n")
    bad_config = subprocess.run([GATEWAY_BIN, "--config", str(cfg), "--check-config"],
                                capture_output=True, text=True)
    assert bad_config.returncode == 1
    assert f"{cfg}:2:1: error: unknown key 'workerz'" in bad_config.stderr
    assert not (tmp_path / "a.jsonl").exists(), "checking must not start anything"
