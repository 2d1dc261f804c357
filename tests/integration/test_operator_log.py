"""The operator's log (stderr, one logfmt line per event) from the real gateway: start and stop,
reloads accepted and rejected with their errors, session persistence failures, a bad
--log-level; and never a token or placeholder."""
import os
import signal
import subprocess
import time

from conftest import DEFAULT_POLICY, GATEWAY_BIN


def log_lines(gateway, event, timeout=10.0):
    """The operator-log lines of `event`, once there is at least one (polled)."""
    deadline = time.time() + timeout
    while True:
        with open(gateway.log.name, "rb") as f:
            lines = [l.decode() for l in f.read().splitlines() if f" event={event} " in
                     l.decode("latin-1") + " "]
        if lines or time.time() > deadline:
            return lines


def test_start_reload_and_stop_are_logged(gateway):
    start = log_lines(gateway, "gateway.start")
    assert len(start) == 1 and " level=info " in start[0], start
    assert "policies=test" in start[0] and "proxy=127.0.0.1:3128" in start[0], start

    gateway.write_policy("test", DEFAULT_POLICY + "\n# touched\n")
    gateway.proc.send_signal(signal.SIGHUP)
    assert any("trigger=sighup" in l for l in log_lines(gateway, "policy.load"))

    gateway.write_policy("test", DEFAULT_POLICY + "\nbogus_key: 1\n")
    status, _ = gateway.api("POST", "/v1/reload")
    assert status == 400
    reject = log_lines(gateway, "policy.reject")
    assert len(reject) == 1 and " level=warn " in reject[0], reject
    assert "trigger=control" in reject[0] and "unknown key 'bogus_key'" in reject[0], reject

    gateway.stop()
    assert len(log_lines(gateway, "gateway.stop")) == 1


def test_a_session_that_cannot_be_persisted_is_refused_and_logged(gateway):
    tmp = os.path.join(gateway.dir, "state", "sessions.json.tmp")
    os.mkdir(tmp)  # the table's temporary file cannot be created: as root, only this stops it
    try:
        status, body = gateway.api("POST", "/v1/sessions", {"policy": "test"})
        assert status >= 400, body
        failed = log_lines(gateway, "session.persist_failed")
        assert len(failed) == 1 and " level=error " in failed[0], failed
        assert "sessions.json.tmp: Is a directory" in failed[0], failed
    finally:
        os.rmdir(tmp)
    status, body = gateway.api("POST", "/v1/sessions", {"policy": "test"})
    assert status == 201, body
    with open(gateway.log.name, "rb") as f:
        log = f.read()
    assert body["token"].encode() not in log  # the token is shown once, to the caller only


def test_a_bad_log_level_is_a_usage_error(tmp_path):
    out = subprocess.run([GATEWAY_BIN, "--log-level", "verbose", "--config",
                          str(tmp_path / "none.yaml")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--log-level: 'verbose' is not one of debug, info, warn, error" in out.stderr
