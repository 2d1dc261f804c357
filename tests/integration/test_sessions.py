"""Sessions: identity by token, isolation between sessions, limits, expiry, the control API,
`airlockctl session`, and restart."""
import json
import os
import socket
import stat
import subprocess
import time

from conftest import CTL_BIN, listen, Gateway, curl, raw_request

POLICY_A = """
version: v1
name: pa
egress:
  - {id: web-only, hosts: [web.test], protocol: http, ports: [8080]}
private:
  - {cidr: 127.0.0.0/29, ports: [8080, 9000]}
"""
POLICY_B = """
version: v1
name: pb
egress:
  - {id: api-only, hosts: [api.test], protocol: http, ports: [8080]}
  - {id: raw, hosts: [raw.test], protocol: tcp, ports: [9000]}
private:
  - {cidr: 127.0.0.0/29, ports: [8080, 9000]}
limits:
  connections: 2
"""


def two_policy_gateway(tmp_path, dns):
    return Gateway(str(tmp_path), dns, policies={"pa": POLICY_A, "pb": POLICY_B})


def test_two_sessions_different_policies_no_cross_talk(tmp_path, dns, upstream):
    g = two_policy_gateway(tmp_path, dns)
    try:
        a = g.session("pa", source=None, token=True)
        b = g.session("pb", source=None, token=True)
        ua, ub = f"{a['id']}:{a['token']}", f"{b['id']}:{b['token']}"
        assert curl("http://web.test:8080/a", user=ua)[0] == 200
        assert curl("http://api.test:8080/b", user=ub)[0] == 200
        s, body = curl("http://api.test:8080/x", user=ua)
        assert s == 403 and json.loads(body)["session"] == a["id"]
        s, body = curl("http://web.test:8080/x", user=ub)
        assert s == 403 and json.loads(body)["session"] == b["id"]
        # A's id with B's token is nobody.
        assert curl("http://web.test:8080/", user=f"{a['id']}:{b['token']}")[0] == 407
        assert curl("http://web.test:8080/", user=f"{a['id']}:wrong")[0] == 407
        recs = g.records(lambda r: len([x for x in r if x["event"] == "http.request"]) >= 2)
        for r in recs:
            if r["event"] == "http.request":
                assert (r["session"], r["rule"]) in {(a["id"], "web-only"), (b["id"], "api-only")}
        # Tokens never reach the log or the state file.
        text = open(g.audit).read() + open(os.path.join(g.dir, "state", "sessions.json")).read()
        assert a["token"] not in text and b["token"] not in text
    finally:
        g.stop()


def test_session_connection_limit(tmp_path, dns):
    g = two_policy_gateway(tmp_path, dns)
    srv = listen("127.0.0.4", 9000)
    held = []
    try:
        g.session("pb")
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", 3128), timeout=5)
            c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
            up, _ = srv.accept()
            held += [c, up]
        resp = raw_request(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 403 ") and b"limit_connections" in resp
        # Closing both ends of one tunnel frees its slot (one end alone is a half-close).
        held.pop().close()
        held.pop().close()
        # The gateway frees the slot once it sees both ends close; allow it a moment (polling,
        # so a slow sanitizer build does not make this flaky).
        deadline = time.time() + 5
        while True:
            c = socket.create_connection(("127.0.0.1", 3128), timeout=5)
            c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
            answer = c.recv(4096)
            if answer.startswith(b"HTTP/1.1 200 ") or time.time() > deadline:
                break
            c.close()
            time.sleep(0.1)
        assert answer.startswith(b"HTTP/1.1 200 "), "a closed connection must free its slot"
        held.append(c)
    finally:
        for c in held:
            c.close()
        srv.close()
        g.stop()


def test_byte_budget_ends_a_tunnel(tmp_path, dns):
    policy = POLICY_B.replace("limits:\n  connections: 2", "limits:\n  bytes_out: 64KiB")
    g = Gateway(str(tmp_path), dns, policies={"pb": policy})
    srv = listen("127.0.0.4", 9000)
    try:
        g.session("pb")
        c = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
        up, _ = srv.accept()
        try:
            for _ in range(64):
                c.sendall(b"x" * 16384)
        except OSError:
            pass
        c.settimeout(5)
        try:
            ended = c.recv(4096) == b""
        except ConnectionResetError:
            ended = True  # closed with unread input: a reset
        assert ended, "the tunnel must end past the byte budget"
        # Nothing past the budget reached the upstream.
        up.settimeout(5)
        received = 0
        while chunk := up.recv(65536):
            received += len(chunk)
        assert received <= 64 * 1024
        up.close()
        c.close()
        rec = g.records(lambda r: any(x.get("reason") == "limit_bytes_out" for x in r))
        closed = [r for r in rec if r["event"] == "connection.close"][0]
        assert closed["reason"] == "limit_bytes_out" and closed["bytes_up"] < 1024 * 1024
        # And the next connection is refused up front.
        resp = raw_request(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 403 ") and b"limit_bytes_out" in resp
    finally:
        srv.close()
        g.stop()


def test_ttl_expiry_ends_the_session_and_its_connections(tmp_path, dns):
    g = two_policy_gateway(tmp_path, dns)
    srv = listen("127.0.0.4", 9000)
    try:
        s = g.session("pb", ttl_seconds=2)
        c = socket.create_connection(("127.0.0.1", 3128), timeout=6)
        c.sendall(b"CONNECT raw.test:9000 HTTP/1.1\r\nHost: raw.test:9000\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert c.recv(4096) == b"", "the tunnel must close when the session expires"
        c.close()
        assert curl("http://api.test:8080/")[0] == 407
        recs = g.records(lambda r: any(x["event"] == "session.expire" for x in r))
        assert any(r["event"] == "session.expire" and r["session"] == s["id"] for r in recs)
        assert any(r["event"] == "connection.close" and r["reason"] == "session_ended"
                   for r in recs)
    finally:
        srv.close()
        g.stop()


def test_control_api(gateway):
    assert stat.S_IMODE(os.stat(gateway.control).st_mode) == 0o600
    status, health = gateway.api("GET", "/v1/health")
    assert status == 200 and health["policies"] == ["test"] and health["audit"] == "ok"
    s = gateway.session(labels={"agent": "a1"})
    status, got = gateway.api("GET", "/v1/sessions/" + s["id"])
    assert status == 200 and got["labels"] == {"agent": "a1"} and got["source"] == "127.0.0.1"
    status, err = gateway.api("POST", "/v1/sessions", {"policy": "nope"})
    assert status == 400 and "no policy named 'nope'" in err["error"]
    status, err = gateway.api("POST", "/v1/sessions", {"policy": "test", "colour": 1})
    assert status == 400 and "unknown key 'colour'" in err["error"]
    status, err = gateway.api("POST", "/v1/sessions", {"policy": "test", "source": "127.0.0.1"})
    assert status == 409, "one source address, one session"
    assert gateway.api("DELETE", "/v1/sessions/" + s["id"])[0] == 204
    assert gateway.api("GET", "/v1/sessions/" + s["id"])[0] == 404
    assert curl("http://web.test:8080/")[0] == 407
    recs = gateway.records(lambda r: any(x["event"] == "session.delete" for x in r))
    assert [r["event"] for r in recs if r["event"].startswith("session.")] == \
        ["session.create", "session.delete"]


def test_restart_keeps_sessions(gateway):
    s = gateway.session(source=None, token=True)
    user = f"{s['id']}:{s['token']}"
    assert curl("http://web.test:8080/", user=user)[0] == 200
    gateway.stop()
    gateway.start()
    assert curl("http://web.test:8080/", user=user)[0] == 200
    assert gateway.api("GET", "/v1/sessions")[1]["sessions"][0]["id"] == s["id"]


POLICY_OPS = """
version: v1
name: ops
egress:
  - {id: api, hosts: [api.example.test], inspect: true, credentials: [github]}
"""


def ctl(*args):
    return subprocess.run([CTL_BIN, "session", *args], capture_output=True, text=True, timeout=30)


def test_airlockctl_session_create_ls_rm(tmp_path, dns):
    secret = tmp_path / "github-token"
    secret.write_text("ghs_" + "1" * 40 + "\n")
    os.chmod(secret, 0o600)
    g = Gateway(str(tmp_path), dns, policies={"ops": POLICY_OPS}, extra_config=f"""credentials:
  github:
    source: static
    file: {secret}
    placeholder: {{env: GITHUB_TOKEN, prefix: ghp_}}
    inject:
      - {{header: Authorization, value: "Bearer {{token}}"}}
""")
    try:
        # create: the session as the gateway made it, with its token and placeholder, on stdout.
        r = ctl("create", "--socket", g.control, "--policy", "ops", "--ttl", "120",
                "--label", "agent=a1", "--label", "team=ml=x")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        one = json.loads(r.stdout)
        placeholder = one["placeholders"]["GITHUB_TOKEN"]
        assert placeholder.startswith("ghp_") and one["token"] and one["policy"] == "ops"
        status, held = g.api("GET", "/v1/sessions/" + one["id"])
        assert status == 200 and held["labels"] == {"agent": "a1", "team": "ml=x"}
        assert held["proxy_token"] is True and "source" not in held
        assert held["created"] == one["created"] and held["expires"] == one["expires"]
        # The socket found through airlock.yaml's listen.control; the identity by address alone.
        r = ctl("create", "--config", g.config, "--policy", "ops", "--id", "ops-2",
                "--source", "127.0.0.5", "--no-token")
        assert r.returncode == 0, r.stderr
        two = json.loads(r.stdout)
        assert two["id"] == "ops-2" and "token" not in two
        status, held = g.api("GET", "/v1/sessions/ops-2")
        assert held["source"] == "127.0.0.5" and held["proxy_token"] is False

        # ls: a row per live session; the token and placeholders appear nowhere but in create.
        r = ctl("ls", "--socket", g.control)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split()[:5] == ["ID", "POLICY", "CREATED", "EXPIRES", "ADDRESS"]
        rows = {l.split()[0]: l.split() for l in lines[1:]}
        assert set(rows) == {one["id"], "ops-2"}
        assert rows["ops-2"][1] == "ops" and rows["ops-2"][4] == "127.0.0.5"
        assert rows["ops-2"][5] == "no" and rows[one["id"]][5] == "yes"
        assert rows[one["id"]][4] == "-" and rows[one["id"]][-1] == "agent=a1,team=ml=x"
        r = ctl("ls", "--json", "--config", g.config)
        assert r.returncode == 0, r.stderr
        listed = json.loads(r.stdout)["sessions"]
        assert listed == g.api("GET", "/v1/sessions")[1]["sessions"]
        r_table = ctl("ls", "--socket", g.control).stdout
        for text in (r.stdout, r_table):
            assert placeholder not in text and one["token"] not in text
            assert "placeholders" not in text

        # rm: the known one ends; an unknown one (whatever it is made of) fails the run.
        r = ctl("rm", "--socket", g.control, one["id"], "no-such", "../health x")
        assert r.returncode == 1
        assert r.stdout == f"deleted {one['id']}\n"
        assert "no session 'no-such'" in r.stderr and "no session '../health x'" in r.stderr
        assert [s["id"] for s in g.api("GET", "/v1/sessions")[1]["sessions"]] == ["ops-2"]
        r = ctl("rm", "--config", g.config, "ops-2")
        assert r.returncode == 0 and r.stdout == "deleted ops-2\n", r.stderr
        assert g.api("GET", "/v1/sessions")[1]["sessions"] == []
        recs = g.records(lambda r: sum(x["event"] == "session.delete" for x in r) >= 2)
        assert [x["session"] for x in recs if x["event"] == "session.delete"] == \
            [one["id"], "ops-2"]

        # The gateway's refusals, said on stderr with exit 1.
        r = ctl("create", "--socket", g.control, "--policy", "nope")
        assert r.returncode == 1 and r.stdout == ""
        assert "no policy named 'nope'" in r.stderr
        r = ctl("create", "--socket", g.control, "--policy", "ops", "--ttl", "0")
        assert r.returncode == 1 and "'ttl_seconds' must be 1 to 604800" in r.stderr
        assert g.api("GET", "/v1/sessions")[1]["sessions"] == []
        # The placeholder went nowhere but create's stdout.
        assert placeholder not in open(os.path.join(g.dir, "gateway.log")).read()
    finally:
        g.stop()

    r = ctl("ls", "--socket", g.control)
    assert r.returncode == 1 and r.stdout == ""
    assert "is airlock-gateway running?" in r.stderr
