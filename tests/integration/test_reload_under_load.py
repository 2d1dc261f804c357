"""Reloads under load, through the real gateway: while keep-alive clients send allowed requests,
policies are reloaded again and again by SIGHUP and by the control API. No allowed request
fails, the next request on every kept-alive connection is decided by the new policy, and an
invalid policy changes nothing."""
import http.client
import signal
import threading
import time

from conftest import DEFAULT_POLICY

WEB_RULE = """  - id: web
    hosts: [web.test]
    protocol: http
    ports: [8080]
"""
NARROW = DEFAULT_POLICY.replace(WEB_RULE, WEB_RULE + '    http:\n      paths: ["/only/**"]\n')
# Without the private block that lets rules reach the test upstreams on 127.0.0.0/29.
NO_PRIVATE = DEFAULT_POLICY[:DEFAULT_POLICY.index("private:")]
WORKERS = 4


class Client(threading.Thread):
    """One keep-alive connection to the proxy, sending GETs until told to stop. Each result is
    (phase, path, status or the exception's name, whether it went over a kept-alive connection).
    A refusal closes the connection; the next request opens a new one."""

    def __init__(self, n, phase, go):
        super().__init__(daemon=True)
        self.n = n
        self.phase = phase  # a one-element list the test changes
        self.go = go  # cleared: the client waits between requests
        self.waiting = threading.Event()
        self.results = []
        self.stop = threading.Event()
        self.conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)

    def path(self):
        return "/only/x" if self.phase[0] == "only" else f"/load/{self.n}/{len(self.results)}"

    def run(self):
        while not self.stop.is_set():
            if not self.go.is_set():
                self.waiting.set()
                self.go.wait()
                self.waiting.clear()
            phase, path = self.phase[0], self.path()
            reused = self.conn.sock is not None
            try:
                self.conn.request("GET", "http://web.test:8080" + path)
                resp = self.conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
            self.results.append((phase, path, status, reused))

    def count(self, phase):
        return sum(1 for r in self.results if r[0] == phase)


def wait_for(condition, what, timeout=20.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def test_reloads_under_load_fail_no_request_and_apply_at_the_next_one(gateway, upstream):
    gateway.session()
    phase = ["steady"]
    go = threading.Event()
    go.set()
    clients = [Client(n, phase, go) for n in range(WORKERS)]
    for c in clients:
        c.start()
    try:
        loads = lambda: len(gateway.events("policy.load"))  # noqa: E731
        base = loads()
        for i in range(8):
            # Traffic between reloads, so that every reload lands on busy connections.
            before = [c.count("steady") for c in clients]
            wait_for(lambda: all(c.count("steady") >= b + 5 for c, b in zip(clients, before)),
                     "requests between reloads")
            gateway.write_policy("test", DEFAULT_POLICY + f"\n# reload {i}\n")
            if i % 2 == 0:
                gateway.proc.send_signal(signal.SIGHUP)
            else:
                status, body = gateway.api("POST", "/v1/reload")
                assert status == 200, body
            wait_for(lambda: loads() == base + i + 1, f"reload {i}")
        steady = [r for c in clients for r in c.results if r[0] == "steady"]
        assert len(steady) >= WORKERS * 8 * 5
        assert [r for r in steady if r[2] != 200] == [], "an allowed request failed in a reload"
        triggers = [r["trigger"] for r in gateway.events("policy.load")][-8:]
        assert triggers == ["sighup", "control"] * 4

        # A narrower policy: the next request on each kept-alive connection is refused, by its
        # path, or by the address its upstream connection goes to. The clients hold still
        # while it loads, their connections open and idle.
        for policy, name in ((NO_PRIVATE, "no_private"), (DEFAULT_POLICY, "steady"),
                             (NARROW, "after")):
            go.clear()
            wait_for(lambda: all(c.waiting.is_set() for c in clients), "the clients to hold")
            gateway.write_policy("test", policy)
            status, body = gateway.api("POST", "/v1/reload")
            assert status == 200, body
            phase[0] = name
            marks = [c.count(name) for c in clients]
            go.set()
            wait_for(lambda: all(c.count(name) >= m + 3 for c, m in zip(clients, marks)),
                     "requests after the reload")
            if name == "steady":
                continue
            for c in clients:
                after = [r for r in c.results if r[0] == name]
                if name == "no_private":
                    # The reload closes the connections to an address no longer allowed (a
                    # request that comes first is refused by that address); later ones are
                    # refused before they dial. A request written into the closed connection
                    # sees it closed (FIN) or reset (its bytes met a closed socket), by timing.
                    assert after[0][2] in ("RemoteDisconnected", "ConnectionResetError",
                                           "BrokenPipeError", 403), after
                    assert {r[2] for r in after[1:]} == {403}, after
                else:
                    assert {r[2] for r in after} == {403}, after
                    # The first went over the connection kept alive from before the reload.
                    assert after[0][3], "the first request after the reload used a new connection"

        # An invalid policy changes nothing: /only/ still allowed, /load/ still refused.
        gateway.write_policy("test", NARROW + "\nbogus_key: 1\n")
        status, body = gateway.api("POST", "/v1/reload")
        assert status == 400 and "bogus_key" in body["error"], body
        phase[0] = "invalid"
        wait_for(lambda: all(c.count("invalid") >= 3 for c in clients), "requests after it")
        phase[0] = "only"
        wait_for(lambda: all(c.count("only") >= 3 for c in clients), "/only/ requests")
    finally:
        for c in clients:
            c.stop.set()
        go.set()
        for c in clients:
            c.join(15)
            c.conn.close()
    for c in clients:
        assert {r[2] for r in c.results if r[0] == "invalid"} == {403}
        assert {r[2] for r in c.results if r[0] == "only"} == {200}
    refused = [r["target"] for r in upstream.requests if r["target"].startswith("/load/")]
    assert len(refused) == sum(1 for c in clients for r in c.results
                               if r[0] == "steady" and r[2] == 200), \
        "a refused request reached the upstream"
