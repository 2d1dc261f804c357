"""The gateway's DNS responder for sandboxes: allowed names resolved with every answer checked,
unknown names answered NXDOMAIN (or REFUSED) without any upstream query, malformed queries
FORMERR, sessions by source address, a per-session rate limit, and every query audited."""
import socket
import struct
import subprocess

import pytest

from conftest import CTL_BIN, DEFAULT_POLICY, Gateway
from dnsstub import encode_name

RESPONDER = ("127.0.0.1", 15053)
A, AAAA, TXT = 1, 28, 16


def query(name, qtype=A, source="127.0.0.1", tcp=False, raw=None):
    msg = raw if raw is not None else (struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) +
                                       encode_name(name) + struct.pack(">HH", qtype, 1))
    if tcp:
        s = socket.create_connection(RESPONDER, timeout=3, source_address=(source, 0))
        s.sendall(struct.pack(">H", len(msg)) + msg)
        n = struct.unpack(">H", s.recv(2))[0]
        resp = b""
        while len(resp) < n:
            resp += s.recv(n - len(resp))
        s.close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source, 0))
        s.settimeout(3)
        s.sendto(msg, RESPONDER)
        resp = s.recvfrom(4096)[0]
        s.close()
    return parse(resp)


def parse(resp):
    qid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", resp[:12])
    pos = 12
    for _ in range(qd):
        while resp[pos] != 0:
            pos += resp[pos] + 1
        pos += 5
    answers = []
    for _ in range(an):
        pos += 2  # compressed name
        rtype, _, ttl, rdlen = struct.unpack(">HHIH", resp[pos:pos + 10])
        rdata = resp[pos + 10:pos + 10 + rdlen]
        fam = socket.AF_INET if rtype == A else socket.AF_INET6
        answers.append((socket.inet_ntop(fam, rdata), ttl))
        pos += 10 + rdlen
    return {"rcode": flags & 0xf, "answers": answers, "id": qid}


def test_allowed_name_is_resolved_and_audited(gateway, dns):
    s = gateway.session()
    r = query("web.test")
    assert r["rcode"] == 0 and r["answers"] == [("127.0.0.2", 30)]
    assert query("WEB.test", AAAA)["answers"] == []  # NODATA: the name has no AAAA
    rec = gateway.records(lambda x: any(y["event"] == "dns.query" for y in x))
    q = [x for x in rec if x["event"] == "dns.query"][0]
    assert (q["session"], q["name"], q["qtype"], q["decision"], q["answers"]) == \
        (s["id"], "web.test", "A", "allow", ["127.0.0.2"])


def test_unknown_names_get_nxdomain_without_an_upstream_query(gateway, dns):
    gateway.session()
    dns.queries.clear()
    secret = "c2VjcmV0.exfil.example"
    assert query(secret)["rcode"] == 3
    assert query(secret, TXT)["rcode"] == 5  # other types of unknown names: REFUSED
    assert all(secret not in n for n, _ in dns.queries), dns.queries
    rec = gateway.records(lambda x: sum(y["event"] == "dns.query" for y in x) >= 2)
    assert {x["reason"] for x in rec if x["event"] == "dns.query"} == {"host_not_allowed"}
    # The audit table names what was asked.
    t = subprocess.run([CTL_BIN, "audit", "query", "--table", "--event", "dns.query",
                        gateway.audit], capture_output=True, text=True).stdout.splitlines()
    assert len(t) == 3 and t[1].endswith(f"{secret} A") and t[2].endswith(f"{secret} TXT"), t


def test_hostile_answers_are_dropped(gateway, dns):
    gateway.session()
    dns.set("meta.evil.test", [("A", "169.254.169.254", 60)])
    dns.set("mixed2.evil.test", [("A", "10.0.0.1", 60), ("A", "127.0.0.2", 60),
                                 ("A", "93.184.216.34", 60)])
    dns.set("v6.evil.test", [("AAAA", "::ffff:169.254.169.254", 60)])
    assert query("meta.evil.test") == {"rcode": 0, "answers": [], "id": 0x4242}
    assert query("mixed2.evil.test")["answers"] == [("127.0.0.2", 30), ("93.184.216.34", 30)]
    assert query("v6.evil.test", AAAA)["answers"] == []
    rec = gateway.records(lambda x: sum(y["event"] == "dns.query" for y in x) >= 3)
    reasons = {x["name"]: x["reason"] for x in rec if x["event"] == "dns.query"}
    assert reasons["meta.evil.test"] == "answers_denied"
    assert reasons["mixed2.evil.test"] == "some_answers_denied"


def test_tcp_malformed_and_other_types(gateway):
    gateway.session()
    assert query("web.test", tcp=True)["answers"] == [("127.0.0.2", 30)]
    assert query("web.test", TXT)["rcode"] == 0 and query("web.test", TXT)["answers"] == []
    two_questions = (struct.pack(">HHHHHH", 7, 0x0100, 2, 0, 0, 0) +
                     (encode_name("web.test") + struct.pack(">HH", 1, 1)) * 2)
    assert query(None, raw=two_questions)["rcode"] == 1  # FORMERR
    pointer = struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    assert query(None, raw=pointer)["rcode"] == 1


def test_queries_from_no_session_are_refused(gateway, dns):
    gateway.session()  # for 127.0.0.1 only
    dns.queries.clear()
    assert query("web.test", source="127.0.0.6")["rcode"] == 5
    assert dns.queries == []


def test_refused_for_unknown_names_and_rate_limit(tmp_path, dns):
    policy = DEFAULT_POLICY + "dns:\n  unknown_names: refused\n"
    g = Gateway(str(tmp_path), dns, policies={"test": policy},
                extra_config="dns:\n  queries_per_second: 5\n")
    try:
        g.session()
        assert query("unknown.example")["rcode"] == 5
        rcodes = [query("web.test")["rcode"] for _ in range(30)]
        assert rcodes.count(5) >= 15 and rcodes.count(0) >= 5, rcodes
        rec = g.records(lambda x: any(y.get("reason") == "rate_limited" for y in x))
        assert any(x.get("reason") == "rate_limited" for x in rec)
    finally:
        g.stop()
