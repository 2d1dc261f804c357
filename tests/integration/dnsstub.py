"""A stub DNS server for tests: answers A, AAAA and CNAME from a table the test sets, counts the
queries it saw, and answers NXDOMAIN for anything else."""
import socket
import struct
import threading


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def decode_name(data, pos):
    labels = []
    while True:
        n = data[pos]
        if n == 0:
            return ".".join(labels), pos + 1
        labels.append(data[pos + 1:pos + 1 + n].decode())
        pos += 1 + n


class DnsStub:
    """answers: name -> list of (type, value, ttl); a value may be a callable returning that
    list, for answers that change between queries (rebinding)."""

    def __init__(self, address="127.0.0.53", port=53):
        self.answers = {}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.address = f"{address}:{port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, records):
        self.answers[name.lower()] = records

    def _records(self, name):
        r = self.answers.get(name.lower())
        return r() if callable(r) else r

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), peer)
            except Exception:  # a malformed query: ignore it
                pass

    def _answer(self, q):
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        name, pos = decode_name(q, 12)
        qtype, qclass = struct.unpack(">HH", q[pos:pos + 4])
        question = q[12:pos + 4]
        self.queries.append((name, qtype))
        records = self._records(name)
        if records is None:
            return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        current = name
        for rtype, value, ttl in records:
            if rtype == "CNAME":
                rdata = encode_name(value)
                answers += encode_name(current) + struct.pack(">HHIH", 5, 1, ttl, len(rdata)) + rdata
                count += 1
                current = value
            elif rtype == "A" and qtype == 1:
                rdata = socket.inet_pton(socket.AF_INET, value)
                answers += encode_name(current) + struct.pack(">HHIH", 1, 1, ttl, 4) + rdata
                count += 1
            elif rtype == "AAAA" and qtype == 28:
                rdata = socket.inet_pton(socket.AF_INET6, value)
                answers += encode_name(current) + struct.pack(">HHIH", 28, 1, ttl, 16) + rdata
                count += 1
        return struct.pack(">HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answers

    def close(self):
        self.sock.close()
