"""Sessions: identity by token, isolation between sessions, limits, expiry, the control API,
and restart."""
import json
import os
import socket
import stat
import time

from conftest import listen, Gateway, curl, raw_request

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
