"""An HTTPS upstream that speaks only HTTP/2 (ALPN h2), for the HTTP/2 inspection tests: a
threaded Python `ssl` server driving the `h2` library (Debian's python3-h2), recording every
stream it receives (method, path, authority, headers, body digest, which connection). Per path:
  /trailers        200 "ok" followed by trailers grpc-status: 0, grpc-message: fine
  /download?bytes=N    N bytes of pattern_blocks(N), sent as the stream's window allows
  /blob?bytes=N    N bytes (N <= 16384) with the headers and END_STREAM in one write
  /upload          digests the body; answers {"bytes": n, "sha256": hex}
  /reset           resets the stream (RST_STREAM, REFUSED_STREAM) without an answer
  /hints           a 103 echoing the request's Authorization in a Link header, then 200 "hinted"
  /bye?bytes=N     N bytes (N < 256 KiB) and the end of the stream at once, then GOAWAY and the
                   connection closed
  /early           answers 200 "early" as soon as the headers are in, then resets the stream
                   (NO_ERROR): the rest of the request body is not wanted
  anything else    200 "h2 hello METHOD PATH"
"""
import hashlib
import json
import socket
import ssl
import threading
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from conftest import listen, serve
from tls_upstreams import pattern_blocks


class H2Stream:
    def __init__(self, headers, conn):
        self.headers = {}
        for k, v in headers:
            k, v = k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v
            self.headers.setdefault(k, []).append(v)
        self.method = self.header(":method")
        self.path = self.header(":path")
        self.authority = self.header(":authority")
        self.conn = conn
        self.body = hashlib.sha256()
        self.body_len = 0

    def header(self, name):
        v = self.headers.get(name)
        return v[0] if v else None


class H2Upstream:
    def __init__(self, address, port, cert, key):
        self.address, self.port = address, port
        self.requests = []      # H2Stream of every request, once its body is in
        self.connections = 0
        self.sent = 0           # body bytes of /download handed to sockets
        self.lock = threading.Lock()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = listen(address, port, 64)
        serve(self.sock, self._serve)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.connections = 0
            self.sent = 0

    def close(self):
        self.sock.close()

    def _serve(self, raw):
        raw.settimeout(60)
        with self.lock:
            self.connections += 1
            conn_id = self.connections
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        try:
            if tls.selected_alpn_protocol() == "h2":
                _Connection(self, tls, conn_id).run()
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            tls.close()


class _Connection:
    def __init__(self, upstream, sock, conn_id):
        self.up, self.sock, self.id = upstream, sock, conn_id
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.streams = {}
        self.pending = {}      # stream -> the blocks still to send (as windows open)
        self.pending_buf = {}  # stream -> the part of the current block not yet sent
        self.bye = False       # /bye answered: GOAWAY and close

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def run(self):
        self.h2.initiate_connection()
        self.flush()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            for ev in self.h2.receive_data(data):
                self.on_event(ev)
            self.pump()
            self.flush()
            if self.bye:
                # GOAWAY, then a graceful close: FIN, and what the gateway still sends read
                # until it closes too (closing with unread input would reset the connection
                # and lose the answer in flight).
                self.h2.close_connection()
                self.flush()
                self.sock.shutdown(socket.SHUT_WR)
                while self.sock.recv(65536):
                    pass
                return

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            s = self.streams[ev.stream_id] = H2Stream(ev.headers, self.id)  # StreamEnded follows
            if s.path == "/early" and not ev.stream_ended:
                del self.streams[ev.stream_id]
                with self.up.lock:
                    self.up.requests.append(s)
                self.h2.send_headers(ev.stream_id, [(":status", "200"), ("content-length", "5")])
                self.h2.send_data(ev.stream_id, b"early", end_stream=True)
                self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        elif isinstance(ev, h2.events.DataReceived):
            s = self.streams.get(ev.stream_id)
            if s:
                s.body.update(ev.data)
                s.body_len += len(ev.data)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.respond(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.pending.pop(ev.stream_id, None)
            self.pending_buf.pop(ev.stream_id, None)

    def respond(self, sid):
        s = self.streams.pop(sid)
        with self.up.lock:
            self.up.requests.append(s)
        url = urllib.parse.urlsplit(s.path or "/")
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/reset":
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if url.path == "/trailers":
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            self.h2.send_data(sid, b"ok")
            self.h2.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "fine")],
                                 end_stream=True)
            return
        if url.path == "/download":
            n = int(query["bytes"][0])
            self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
            self.pending[sid] = pattern_blocks(n)
            self.pending_buf[sid] = b""
            return
        if url.path == "/hints":
            self.h2.send_headers(sid, [(":status", "103"),
                                       ("link", f"<{s.header('authorization')}>; rel=preload")])
            self.h2.send_headers(sid, [(":status", "200"), ("content-length", "6")])
            self.h2.send_data(sid, b"hinted", end_stream=True)
            return
        if url.path == "/bye":
            n = int(query["bytes"][0])
            self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
            step = self.h2.max_outbound_frame_size  # (within the gateway's 256 KiB window)
            for i in range(0, n, step):
                self.h2.send_data(sid, b"y" * min(step, n - i), end_stream=i + step >= n)
            self.bye = True
            return
        if url.path == "/blob":
            n = int(query["bytes"][0])
            self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
            self.h2.send_data(sid, b"b" * n, end_stream=True)
            return
        if url.path == "/upload":
            body = json.dumps({"bytes": s.body_len, "sha256": s.body.hexdigest()}).encode()
        else:
            body = f"h2 hello {s.method} {s.path}".encode()
        self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
        self.h2.send_data(sid, body, end_stream=True)

    def pump(self):
        """Sends what the windows allow of every pending download."""
        for sid in list(self.pending):
            buf = self.pending_buf[sid]
            while True:
                if not buf:
                    buf = next(self.pending[sid], b"")
                    if not buf:
                        self.h2.end_stream(sid)
                        del self.pending[sid]
                        break
                window = min(self.h2.local_flow_control_window(sid),
                             self.h2.max_outbound_frame_size)
                if window <= 0:
                    break
                n = min(window, len(buf))
                self.h2.send_data(sid, buf[:n])
                buf = buf[n:]
                self.flush()
                with self.up.lock:
                    self.up.sent += n
            if sid in self.pending:
                self.pending_buf[sid] = buf
            else:
                self.pending_buf.pop(sid, None)
