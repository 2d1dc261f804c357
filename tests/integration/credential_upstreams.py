"""HTTPS upstreams that play the services a credential broker talks to, for the credential tests:
an OAuth2 client-credentials token endpoint (RFC 6749 §4.4), a GitHub-compatible API (GitHub App
JWTs exchanged for installation tokens, token-authenticated REST calls, and git smart HTTP served
by `git http-backend`), an S3-compatible store and generic AWS service that verify Signature
Version 4, and a model-API-like endpoint that echoes the credentials it was sent.

Each server takes the address and port to bind (127.0.0.x, 443 or any port; 0 picks one, read
`port` after `start()`) and a certificate and key (from `tls_upstreams.Pki.leaf`), serves HTTPS/1.1
with keep-alive on a thread per connection once started (`start()`/`stop()`, or `with`), and
records what it received in lists guarded by its lock, for the tests to assert on. Nothing here
prints or logs a secret: records keep credentials only where a test needs to compare them, and
no record's repr shows one."""
import base64
import datetime
import email.utils
import hashlib
import hmac
import http
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import string
import subprocess
import tempfile
import threading
import time
import urllib.parse
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import listen, serve
from tls_upstreams import _body_chunks, _chunk, read_request_head

_ALNUM = string.ascii_letters + string.digits


def random_token(prefix="", min_len=32, max_len=64):
    """prefix + random letters and digits, of a random length in [min_len, max_len]: a token
    whose length a client must not assume."""
    n = min_len + secrets.randbelow(max_len - min_len + 1)
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def iso8601(epoch):
    """2024-05-01T12:00:00Z"""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def basic_credentials(value):
    """(user, password) from an `Authorization: Basic ...` value; None if it is not one."""
    scheme, _, b64 = (value or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(b64.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def bearer_token(value, schemes=("bearer",)):
    """The token of an `Authorization: <scheme> <token>` value whose scheme (any case) is one of
    `schemes`; None otherwise."""
    scheme, _, token = (value or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() in schemes and token else None


def _header_safe(value):
    return value.replace("\r", " ").replace("\n", " ")


class HttpRequest:
    """One request as received: the body whole, with any chunked transfer coding removed (any
    Content-Encoding left alone)."""

    def __init__(self, method, target, version, headers, body, conn, sni):
        self.method, self.target, self.version = method, target, version
        self.path, _, self.query = target.partition("?")
        self.headers = headers  # lower-case name -> list of values, in order
        self.body = body
        self.conn = conn        # which accepted connection (1, 2, ...)
        self.sni = sni
        self.status = None      # the status it was answered with

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def __repr__(self):  # never the headers or body: they may hold credentials
        return f"<{self.method} {self.path} conn={self.conn} status={self.status}>"


class HttpsServer:
    """The common part: TLS (one certificate, ALPN http/1.1, SNI recorded), HTTP/1.1 requests
    with keep-alive, `Expect: 100-continue`, chunked request bodies, and answers that are bytes
    (sent with a Content-Length) or an iterator of bytes (sent chunked). Subclasses implement
    `handle(req) -> (status, [(name, value)], body)`.

    Records: `requests` (HttpRequest, in arrival order), `connections` (accepted), `snis`,
    `handshake_errors`, `errors` (handler exceptions, answered 500)."""

    def __init__(self, address, port, cert, key):
        self.address, self.port = address, port
        self.cert, self.key = cert, key
        self.lock = threading.RLock()
        self.requests = []
        self.connections = 0
        self.snis = []
        self.handshake_errors = []
        self.errors = []
        self._sock = None
        self._live = set()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = self._on_sni

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self):
        if self._sock is None:
            self._sock = listen(self.address, self.port, 64)
            self.port = self._sock.getsockname()[1]
            serve(self._sock, self._serve)
        return self

    def stop(self):
        """Stops listening and cuts every open connection; the port is free on return."""
        with self.lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            sock.close()
        with self.lock:
            live = list(self._live)
        for c in live:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    close = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, host, path=""):
        """https://host[:port]path"""
        return f"https://{host}{'' if self.port == 443 else f':{self.port}'}{path}"

    def reset(self):
        """Forgets what was received (subclasses: their own records too)."""
        with self.lock:
            self.requests.clear()
            self.snis.clear()
            self.handshake_errors.clear()
            self.errors.clear()
            self.connections = 0

    # --- the connection -----------------------------------------------------------------------

    def _on_sni(self, sock, name, ctx):
        with self.lock:
            self.snis.append(name)
        sock.airlock_sni = name

    def _serve(self, raw):
        raw.settimeout(60)
        with self.lock:
            self.connections += 1
            conn = self.connections
            self._live.add(raw)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.handshake_errors.append(repr(e))
                self._live.discard(raw)
            raw.close()
            return
        with self.lock:  # wrapping took the descriptor over: stop() must cut `tls` now
            self._live.discard(raw)
            self._live.add(tls)
            stopped = self._sock is None
        if stopped:
            tls.close()
            return
        sni = getattr(tls, "airlock_sni", None)
        rfile = tls.makefile("rb", buffering=65536)
        try:
            while self._one_request(tls, rfile, conn, sni):
                pass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with self.lock:
                self._live.discard(tls)
            rfile.close()
            try:
                tls.close()
            except OSError:
                pass

    def _one_request(self, tls, rfile, conn, sni):
        head = read_request_head(rfile)
        if head is None:
            return False
        method, target, version, headers = head
        if ",".join(headers.get("expect", [])).lower() == "100-continue":
            tls.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b"".join(_body_chunks(rfile, headers))
        req = HttpRequest(method, target, version, headers, body, conn, sni)
        with self.lock:
            self.requests.append(req)
        try:
            status, out_headers, out_body = self.handle(req)
        except Exception as e:  # a bug in a test server: answer, and let the test see it
            with self.lock:
                self.errors.append(repr(e))
            status, out_headers, out_body = 500, [("Content-Type", "text/plain")], b"error"
        req.status = status
        close = ",".join(headers.get("connection", [])).lower() == "close" or version == "HTTP/1.0"
        self._send(tls, method, status, out_headers, out_body, close)
        return not close

    @staticmethod
    def _send(tls, method, status, headers, body, close):
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
        names = {k.lower() for k, _ in headers}
        lines += [f"{k}: {_header_safe(str(v))}" for k, v in headers]
        streamed = not isinstance(body, (bytes, bytearray))
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if streamed and not no_body:
            lines.append("Transfer-Encoding: chunked")
        elif "content-length" not in names and status not in (204, 304):
            lines.append(f"Content-Length: {0 if streamed else len(body)}")
        if close:
            lines.append("Connection: close")
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            return
        if streamed:
            for piece in body:
                if piece:
                    tls.sendall(_chunk(piece))
            tls.sendall(b"0\r\n\r\n")
        else:
            tls.sendall(body)

    def handle(self, req):
        raise NotImplementedError


def _json(status, obj, headers=()):
    return status, [("Content-Type", "application/json")] + list(headers), json.dumps(obj).encode()


# --- OAuth2 client credentials ----------------------------------------------------------------

class TokenEndpoint(HttpsServer):
    """An OAuth2 token endpoint for the client-credentials grant (RFC 6749 §4.4).

    `POST <path>` (default /token), form-urlencoded, `grant_type=client_credentials`; the client
    authenticates with HTTP Basic (client id and secret each form-urlencoded first, §2.3.1) or
    with `client_id`/`client_secret` form fields (§2.3.1), never both. Optional `scope` and
    `audience` are recorded. Answers 200 `{"access_token": <new random token>, "token_type":
    "Bearer", "expires_in": N}` (no expires_in when it is None), with Cache-Control: no-store;
    a wrong client is 401 `invalid_client` (with WWW-Authenticate when Basic was used) or 400
    when the client authenticated in the form; a wrong grant type 400
    `unsupported_grant_type`; malformed requests 400 `invalid_request`.

    Set `fail` to 500 (server_error), 400 (invalid_client) or 401 (invalid_client) to make every
    token request fail that way; `expires_in` and `fail` may be changed while it runs.

    Records: `request_count` (token requests, failed ones too), `token_requests` (a dict per
    request: auth_method 'basic'|'post'|None, client_id, grant_type, scope, audience, fields
    (the form's field names), status, error), `issued_tokens` (in order), `last_scope`,
    `last_audience`; `is_valid(token)` says whether it issued a token that has not expired."""

    def __init__(self, address, port, cert, key, client_id="airlock-client", client_secret=None,
                 expires_in=3600, path="/token"):
        super().__init__(address, port, cert, key)
        self.client_id = client_id
        self.client_secret = client_secret if client_secret is not None else random_token()
        self.expires_in = expires_in
        self.path = path
        self.fail = None
        self.token_requests = []
        self.issued_tokens = []
        self._expiry = {}
        self.last_scope = self.last_audience = None

    @property
    def request_count(self):
        with self.lock:
            return len(self.token_requests)

    def reset(self):
        super().reset()
        with self.lock:
            self.token_requests.clear()
            self.issued_tokens.clear()
            self._expiry.clear()
            self.last_scope = self.last_audience = None

    def is_valid(self, token):
        with self.lock:
            expiry = self._expiry.get(token)
        return expiry is not None and (expiry is True or time.time() < expiry)

    def handle(self, req):
        if req.path != self.path:
            return _json(404, {"error": "not_found"})
        if req.method != "POST":
            return _json(405, {"error": "invalid_request"}, [("Allow", "POST")])
        rec = {"auth_method": None, "client_id": None, "grant_type": None, "scope": None,
               "audience": None, "fields": [], "status": None, "error": None}
        with self.lock:
            self.token_requests.append(rec)
        status, error, extra = self._token(req, rec)
        rec["status"], rec["error"] = status, error
        if error is not None:
            return _json(status, {"error": error}, extra)
        token = random_token()
        with self.lock:
            self.issued_tokens.append(token)
            self._expiry[token] = (True if self.expires_in is None
                                   else time.time() + self.expires_in)
            self.last_scope, self.last_audience = rec["scope"], rec["audience"]
        body = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if rec["scope"] is not None:
            body["scope"] = rec["scope"]
        return _json(200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def _token(self, req, rec):
        """(status, error or None, extra headers), filling in `rec`."""
        if self.fail == 500:
            return 500, "server_error", []
        if self.fail in (400, 401):
            return self.fail, "invalid_client", []
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return 400, "invalid_request", []
        try:
            form = urllib.parse.parse_qs(req.body.decode(), keep_blank_values=True,
                                         strict_parsing=bool(req.body))
        except (ValueError, UnicodeDecodeError):
            return 400, "invalid_request", []
        rec["fields"] = sorted(form)
        if any(len(v) > 1 for v in form.values()):  # §3.2: no parameter more than once
            return 400, "invalid_request", []
        form = {k: v[0] for k, v in form.items()}
        rec["grant_type"] = form.get("grant_type")
        rec["scope"], rec["audience"] = form.get("scope"), form.get("audience")
        basic = None
        if req.header("authorization"):
            basic = basic_credentials(req.header("authorization"))
            if basic is None:
                return 401, "invalid_client", [("WWW-Authenticate", 'Basic realm="token"')]
            basic = tuple(urllib.parse.unquote_plus(p) for p in basic)
        if basic and "client_secret" in form:  # §2.3: one authentication method only
            return 400, "invalid_request", []
        if basic:
            rec["auth_method"] = "basic"
            client_id, secret = basic
            if "client_id" in form and form["client_id"] != client_id:
                return 400, "invalid_request", []
        elif "client_secret" in form:
            rec["auth_method"] = "post"
            client_id, secret = form.get("client_id"), form["client_secret"]
        else:
            client_id, secret = form.get("client_id"), None
        rec["client_id"] = client_id
        if rec["grant_type"] is None:
            return 400, "invalid_request", []
        if secret is None or client_id != self.client_id or not hmac.compare_digest(
                secret.encode(), self.client_secret.encode()):
            if basic:
                return 401, "invalid_client", [("WWW-Authenticate", 'Basic realm="token"')]
            return 400, "invalid_client", []
        if rec["grant_type"] != "client_credentials":
            return 400, "unsupported_grant_type", []
        return 200, None, []


# --- GitHub -----------------------------------------------------------------------------------

def rsa_key_pair(bits=2048):
    """A new RSA key: (private key PEM, PKCS#8 unencrypted; public key PEM), as bytes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def app_jwt(private_key_pem, app_id, iat=None, exp=None, alg="RS256"):
    """A GitHub App JWT, signed RS256 with the key (PEM) as GitHub asks: iss = app_id, iat a
    minute in the past, exp ten minutes after iat, unless given (epoch seconds)."""
    key = serialization.load_pem_private_key(
        private_key_pem if isinstance(private_key_pem, bytes) else private_key_pem.encode(), None)
    iat = int(time.time()) - 60 if iat is None else iat
    exp = iat + 600 if exp is None else exp
    head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"iat": iat, "exp": exp, "iss": app_id}).encode())
    signing_input = f"{head}.{claims}".encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{claims}.{_b64url(sig)}"


def _load_public_key(key):
    if key is None or hasattr(key, "verify"):
        return key
    if hasattr(key, "public_key"):
        return key.public_key()
    pem = key if isinstance(key, bytes) else key.encode()
    if b"PRIVATE KEY" in pem:
        return serialization.load_pem_private_key(pem, None).public_key()
    return serialization.load_pem_public_key(pem)


def _git(*args, cwd=None, env=None, input=None):
    base = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": cwd or "/nonexistent",
            "GIT_AUTHOR_NAME": "Airlock Test", "GIT_AUTHOR_EMAIL": "test@example.test",
            "GIT_COMMITTER_NAME": "Airlock Test", "GIT_COMMITTER_EMAIL": "test@example.test",
            "GIT_AUTHOR_DATE": "2024-05-01T12:00:00Z", "GIT_COMMITTER_DATE": "2024-05-01T12:00:00Z",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(["git", *args], cwd=cwd, env={**base, **(env or {})}, input=input,
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def make_bare_repo(root, owner, repo, files=None, branch="main"):
    """A bare repository at root/owner/repo.git with one commit on `branch` holding `files`
    (name -> text or bytes; default README.md), which accepts pushes over HTTP. Returns
    (path, commit id)."""
    files = files or {"README.md": f"# {owner}/{repo}\nserved by credential_upstreams\n"}
    path = os.path.join(root, owner, repo + ".git")
    os.makedirs(path, exist_ok=True)
    _git("init", "-q", "--bare", "-b", branch, path)
    _git("config", "http.receivepack", "true", cwd=path)
    entries = []
    for name, content in sorted(files.items()):
        data = content.encode() if isinstance(content, str) else content
        blob = _git("hash-object", "-w", "--stdin", cwd=path, input=data)
        entries.append(f"100644 blob {blob}\t{name}\n")
    tree = _git("mktree", cwd=path, input="".join(entries).encode())
    commit = _git("commit-tree", tree, "-m", "initial commit", cwd=path)
    _git("update-ref", f"refs/heads/{branch}", commit, cwd=path)
    return path, commit


_GIT_PATH = re.compile(r"^/([^/]+)/([^/]+?)(?:\.git)?/(info/refs|git-upload-pack|"
                       r"git-receive-pack|HEAD|objects/.+)$")


class GitHubApi(HttpsServer):
    """A GitHub-compatible API and git host. Paths (an /api/v3 prefix is allowed, as on GitHub
    Enterprise):

      POST /app/installations/{id}/access_tokens   Authorization: Bearer <app JWT>, which must
          be RS256, verify with `public_key`, have iss == app_id (string or number), iat at most
          60 s ahead, exp after now and at most iat+600. 201 {"token": "ghs_<random, varying
          length>", "expires_at": "<ISO 8601 Z, token_ttl s ahead>", "permissions": {...},
          "repository_selection": ...}; 401 JSON for a bad JWT; 404 for an installation other
          than `installation_id` (when set). The token is accepted until it expires.
      GET /app                                     the app, with the same JWT check
      GET /user, GET /repos/{owner}/{repo}         Authorization: Bearer|token <accepted token>;
                                                   401 {"message": "Bad credentials"} otherwise
      /{owner}/{repo}[.git]/info/refs, git-upload-pack, git-receive-pack
          git smart HTTP by `git http-backend` over repositories below `git_root` (make them
          with `make_repo`); HTTP Basic whose password is an accepted token, else 401 with
          WWW-Authenticate: Basic realm="GitHub".

    Accepted tokens: issued ones until they expire, plus `accepted_tokens` and `accept(token)`
    (no expiry); `revoke(token)` withdraws one. Set `fail_tokens` to 500 or 401 to make token
    requests fail.

    Records: `token_requests` (dict per token request: installation_id, body (the request's
    JSON or None), claims (the JWT's, or None), status, error), `issued_tokens`,
    `authorizations` (every Authorization value received, in order, None when absent),
    `git_requests` (dict per git request: method, service, user, authorized, status,
    content_encoding, chunked)."""

    def __init__(self, address, port, cert, key, app_id=None, public_key=None,
                 installation_id=None, token_ttl=3600, accepted_tokens=(), git_root=None,
                 permissions=None):
        super().__init__(address, port, cert, key)
        self.app_id = app_id
        self.public_key = _load_public_key(public_key)
        self.installation_id = installation_id
        self.token_ttl = token_ttl
        self.permissions = permissions or {"contents": "read", "metadata": "read"}
        self.fail_tokens = None
        self._own_root = git_root is None
        self.git_root = git_root or tempfile.mkdtemp(prefix="airlock-git-")
        self._tokens = {t: None for t in accepted_tokens}  # token -> expiry epoch or None
        self.token_requests = []
        self.issued_tokens = []
        self.authorizations = []
        self.git_requests = []

    def stop(self):
        super().stop()
        if self._own_root:
            shutil.rmtree(self.git_root, ignore_errors=True)

    close = stop

    def reset(self):
        super().reset()
        with self.lock:
            self.token_requests.clear()
            self.authorizations.clear()
            self.git_requests.clear()

    def make_repo(self, owner, repo, files=None, branch="main"):
        """make_bare_repo below git_root: (path, commit id)."""
        return make_bare_repo(self.git_root, owner, repo, files, branch)

    def accept(self, token):
        with self.lock:
            self._tokens[token] = None

    def revoke(self, token):
        with self.lock:
            self._tokens.pop(token, None)

    def is_accepted(self, token):
        if not token:
            return False
        with self.lock:
            if token not in self._tokens:
                return False
            expiry = self._tokens[token]
        return expiry is None or time.time() < expiry

    # --- requests -----------------------------------------------------------------------------

    def handle(self, req):
        with self.lock:
            self.authorizations.append(req.header("authorization"))
        path = req.path
        if path.startswith("/api/v3/"):
            path = path[len("/api/v3"):]
        m = re.fullmatch(r"/app/installations/([^/]+)/access_tokens", path)
        if m:
            if req.method != "POST":
                return _json(404, {"message": "Not Found"})
            return self._access_token(req, m.group(1))
        if path == "/app" and req.method == "GET":
            claims, error = self._verify_jwt(req.header("authorization"))
            if error:
                return _json(401, {"message": error})
            return _json(200, {"id": self.app_id, "slug": "airlock-test-app",
                               "name": "Airlock test app"})
        if path == "/user" and req.method in ("GET", "HEAD"):
            if not self._api_authorized(req):
                return self._bad_credentials()
            return _json(200, {"login": "airlock-test", "id": 1, "type": "User"})
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)", path)
        if m and req.method in ("GET", "HEAD"):
            if not self._api_authorized(req):
                return self._bad_credentials()
            owner, repo = m.groups()
            return _json(200, {"id": 1, "name": repo, "full_name": f"{owner}/{repo}",
                               "owner": {"login": owner}, "private": True,
                               "default_branch": "main"})
        m = _GIT_PATH.match(req.path)
        if m:
            return self._git_http(req, *m.groups())
        return _json(404, {"message": "Not Found"})

    def _api_authorized(self, req):
        return self.is_accepted(bearer_token(req.header("authorization"), ("bearer", "token")))

    @staticmethod
    def _bad_credentials():
        return _json(401, {"message": "Bad credentials",
                           "documentation_url": "https://docs.github.com/rest"})

    def _verify_jwt(self, authorization):
        """(claims, None) for a valid app JWT, else (claims or None, why)."""
        token = bearer_token(authorization)
        if token is None:
            return None, "A JSON web token could not be decoded"
        try:
            head_b64, claims_b64, sig_b64 = token.split(".")
            head = json.loads(_unb64url(head_b64))
            claims = json.loads(_unb64url(claims_b64))
            sig = _unb64url(sig_b64)
        except ValueError:
            return None, "A JSON web token could not be decoded"
        if not isinstance(head, dict) or not isinstance(claims, dict):
            return None, "A JSON web token could not be decoded"
        if head.get("alg") != "RS256":
            return claims, "JWT alg is not RS256"
        if self.public_key is None:
            return claims, "no app key configured"
        try:
            self.public_key.verify(sig, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except InvalidSignature:
            return claims, "JWT signature does not verify"
        if self.app_id is None or str(claims.get("iss")) != str(self.app_id):
            return claims, "JWT iss is not the app id"
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
            return claims, "JWT lacks iat or exp"
        if iat > now + 60:
            return claims, "'Issued at' claim ('iat') must be an Integer representing a time " \
                           "in the past"
        if exp <= now:
            return claims, "'Expiration time' claim ('exp') must be a numeric value " \
                           "representing the future time at which the assertion expires"
        if exp > iat + 600:
            return claims, "'Expiration time' claim ('exp') is too far in the future"
        return claims, None

    def _access_token(self, req, installation_id):
        rec = {"installation_id": installation_id, "body": None, "claims": None,
               "status": None, "error": None}
        with self.lock:
            self.token_requests.append(rec)
        if req.body:
            try:
                rec["body"] = json.loads(req.body)
            except ValueError:
                rec["status"], rec["error"] = 400, "Problems parsing JSON"
                return _json(400, {"message": rec["error"]})
        claims, error = self._verify_jwt(req.header("authorization"))
        rec["claims"] = claims
        if error:
            rec["status"], rec["error"] = 401, error
            return _json(401, {"message": error,
                               "documentation_url": "https://docs.github.com/rest"})
        if self.installation_id is not None and str(installation_id) != str(
                self.installation_id):
            rec["status"], rec["error"] = 404, "Not Found"
            return _json(404, {"message": "Not Found"})
        if self.fail_tokens:
            rec["status"], rec["error"] = self.fail_tokens, "failing on purpose"
            return _json(self.fail_tokens, {"message": "failing on purpose"})
        token = random_token("ghs_", 30, 70)
        expiry = int(time.time()) + self.token_ttl
        with self.lock:
            self.issued_tokens.append(token)
            self._tokens[token] = expiry
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        out = {"token": token, "expires_at": iso8601(expiry),
               "permissions": body.get("permissions") or self.permissions,
               "repository_selection": "selected" if body.get("repositories") else "all"}
        if body.get("repositories"):
            out["repositories"] = [{"name": r, "full_name": r} for r in body["repositories"]]
        rec["status"] = 201
        return _json(201, out)

    def _git_http(self, req, owner, repo, rest):
        creds = basic_credentials(req.header("authorization"))
        authorized = creds is not None and self.is_accepted(creds[1])
        te = ",".join(req.headers.get("transfer-encoding", [])).lower()
        rec = {"method": req.method, "path": req.path,
               "service": rest if rest != "info/refs" else "info/refs?" + req.query,
               "user": creds[0] if creds else None, "authorized": authorized,
               "content_encoding": req.header("content-encoding"), "chunked": "chunked" in te,
               "status": None}
        with self.lock:
            self.git_requests.append(rec)
        if not authorized:
            rec["status"] = 401
            return 401, [("WWW-Authenticate", 'Basic realm="GitHub"'),
                         ("Content-Type", "text/plain")], b"Authentication required\n"
        if not os.path.isdir(os.path.join(self.git_root, owner, repo + ".git")):
            rec["status"] = 404
            return 404, [("Content-Type", "text/plain")], b"Repository not found.\n"
        env = {"GIT_PROJECT_ROOT": self.git_root, "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": f"/{owner}/{repo}.git/{rest}", "QUERY_STRING": req.query,
               "REQUEST_METHOD": req.method, "CONTENT_TYPE": req.header("content-type") or "",
               "CONTENT_LENGTH": str(len(req.body)), "REMOTE_USER": creds[0] or "git",
               "REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": req.header("host") or "",
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": self.git_root,
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for name, values in req.headers.items():  # CGI: HTTP_*, credentials and framing aside
            if name not in ("authorization", "content-type", "content-length",
                            "transfer-encoding", "connection"):
                env["HTTP_" + name.upper().replace("-", "_")] = ", ".join(values)
        out = subprocess.run(["git", "http-backend"], input=req.body, env=env,
                             capture_output=True, timeout=120)
        head, body = _split_cgi(out.stdout)
        status, headers = 200, []
        for line in head.split("\n"):
            line = line.rstrip("\r")
            if not line:
                continue
            k, _, v = line.partition(":")
            if k.strip().lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k.strip(), v.strip()))
        rec["status"] = status
        return status, headers, body


def _split_cgi(data):
    """(header text, body) of a CGI program's output."""
    ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") for i in [data.find(sep)] if i >= 0]
    if not ends:
        return data.decode("latin-1"), b""
    i, n = min(ends)
    return data[:i].decode("latin-1"), data[i + n:]


# --- AWS Signature Version 4 ------------------------------------------------------------------

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AUTH = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,"
                   r"\s*Signature=([0-9a-f]{64})\s*")


def aws_uri_encode(text, safe=""):
    """URI-encoding as SigV4 defines it: everything but A-Z a-z 0-9 - _ . ~ (and `safe`) as
    %XX with upper-case hex digits."""
    return urllib.parse.quote(text, safe="-_.~" + safe)


def _remove_dot_segments(path):
    """RFC 3986 §5.2.4, with empty segments dropped as AWS services (not S3) do."""
    out = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg and seg != ".":
            out.append(seg)
    return ("/" if path.startswith("/") else "") + "/".join(out) + (
        "/" if path.endswith("/") and out else "")


def canonical_uri(raw_path, service):
    """S3: the path exactly as sent (it is encoded once, by the client, and not normalised).
    Every other service: dot segments and empty segments removed, then encoded again."""
    if not raw_path:
        return "/"
    if service == "s3":
        return raw_path
    return aws_uri_encode(_remove_dot_segments(raw_path) or "/", safe="/")


def canonical_query(raw_query):
    """Each name and value decoded and re-encoded, sorted by name then value."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        k, _, v = part.partition("=")
        pairs.append((aws_uri_encode(urllib.parse.unquote(k)),
                      aws_uri_encode(urllib.parse.unquote(v))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


class SigV4Record:
    """What one SigV4-authenticated request was, and whether it verified. Holds no secret."""

    def __init__(self, method, path):
        self.method, self.path = method, path
        self.access_key_id = None
        self.service = self.region = None
        self.signed_headers = []
        self.payload_hash = None   # 'sha256' (hex in the header, checked against the body),
        # 'UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'body' (no header: hashed
        # here), or the unsupported value sent
        self.security_token = None  # None: none sent; True/False: sent, and matched or not
        self.verified = False
        self.error = None          # the S3/AWS error code when it did not verify
        self.reason = None         # why, in words (never a secret)
        self.operation = None      # S3 operation, or the service's Action

    def __repr__(self):
        return (f"<SigV4 {self.method} {self.path} akid={self.access_key_id} "
                f"service={self.service} verified={self.verified} error={self.error}>")


def _aws_chunked_decode(data):
    """The payload of an aws-chunked body (unsigned chunks, trailers dropped)."""
    out, pos = [], 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            return b"".join(out)
        out.append(data[pos:pos + size])
        pos += size + 2


class _Reject(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class S3Upstream(HttpsServer):
    """An S3-compatible object store, and any other AWS service, behind AWS Signature Version 4
    in the Authorization header (AWS4-HMAC-SHA256), verified with `access_key_id` and
    `secret_access_key` (and, when `session_token` is set, an X-Amz-Security-Token that must
    equal it and be signed). As AWS does: host and the date header (X-Amz-Date, or Date) must
    be signed, every x-amz-* header sent must be signed, the date within `max_skew` s of now and
    the scope's date its day, the region `region` when that is set.

    The service is the credential scope's. For `s3` the canonical URI is the path as sent and
    X-Amz-Content-SHA256 is required: a hex SHA-256 (checked against the body: 400
    XAmzContentSHA256Mismatch), UNSIGNED-PAYLOAD, or STREAMING-UNSIGNED-PAYLOAD-TRAILER
    (aws-chunked, decoded); STREAMING-AWS4-HMAC-SHA256-PAYLOAD and other signed streaming is
    refused with 400 InvalidRequest. For any other service the path is normalised and encoded
    again, and without X-Amz-Content-SHA256 the payload hash is that of the body received.

    S3 (path-style /bucket/key, or virtual-hosted <bucket>.<virtual_host_suffix>): ListBuckets,
    CreateBucket (PUT /bucket), HeadBucket, PutObject (Content-MD5 checked), GetObject (one
    Range), HeadObject, DeleteObject, multipart uploads (create, upload part, complete, abort),
    ListObjectsV2 (list-type=2: prefix, delimiter, max-keys, continuation-token, start-after,
    encoding-type=url) and ListObjects; other subresources 501.
    Errors are S3's XML; a signature mismatch is 403 SignatureDoesNotMatch.
    Other services: sts Action=GetCallerIdentity answers as STS does; anything else 200 JSON
    {"service", "region", "verified": true, "action", "body_sha256"}.

    Records: `auth` (a SigV4Record per request), `objects` ((bucket, key) -> dict with data,
    etag, content_type, metadata, last_modified); helpers `put_object`, `get_object`."""

    ACCOUNT = "123456789012"

    def __init__(self, address, port, cert, key, access_key_id, secret_access_key,
                 session_token=None, region=None, buckets=("test-bucket",),
                 virtual_host_suffix=None, max_skew=900):
        super().__init__(address, port, cert, key)
        self.access_key_id, self.secret_access_key = access_key_id, secret_access_key
        self.session_token = session_token
        self.region = region
        self.virtual_host_suffix = virtual_host_suffix
        self.max_skew = max_skew
        self.buckets = set(buckets)
        self.objects = {}
        self._uploads = {}  # multipart uploads in progress: id -> bucket, key, parts
        self.auth = []

    def reset(self):
        super().reset()
        with self.lock:
            self.auth.clear()

    def put_object(self, bucket, key, data, content_type="binary/octet-stream"):
        with self.lock:
            self.buckets.add(bucket)
            self.objects[(bucket, key)] = {
                "data": data, "etag": '"' + hashlib.md5(data).hexdigest() + '"',
                "content_type": content_type, "metadata": {}, "last_modified": int(time.time())}

    def get_object(self, bucket, key):
        """The stored bytes, or None."""
        with self.lock:
            obj = self.objects.get((bucket, key))
        return obj["data"] if obj else None

    # --- verification -------------------------------------------------------------------------

    def handle(self, req):
        rec = SigV4Record(req.method, req.path)
        with self.lock:
            self.auth.append(rec)
        try:
            body = self._verify(req, rec)
        except _Reject as r:
            rec.error, rec.reason = r.code, r.message
            return self._error(rec.service, req, r.status, r.code, r.message)
        rec.verified = True
        try:
            if rec.service == "s3":
                return self._s3(req, rec, body)
            return self._service(req, rec, body)
        except _Reject as r:
            return self._error(rec.service, req, r.status, r.code, r.message)

    def _verify(self, req, rec):
        """Checks the signature; returns the payload (aws-chunked decoded) or raises _Reject."""
        auth = req.header("authorization")
        if not auth:
            raise _Reject(403, "AccessDenied", "no Authorization header (this upstream does "
                                                "not take presigned URLs)")
        m = _AUTH.fullmatch(auth.strip())
        if not m:
            raise _Reject(400, "AuthorizationHeaderMalformed",
                          "the Authorization header is not AWS4-HMAC-SHA256 Credential=, "
                          "SignedHeaders=, Signature=")
        credential, signed, signature = m.groups()
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise _Reject(400, "AuthorizationHeaderMalformed", "malformed Credential")
        akid, scope_date, region, service, _ = parts
        rec.access_key_id, rec.region, rec.service = akid, region, service
        rec.signed_headers = signed.split(";")
        if akid != self.access_key_id:
            raise _Reject(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our records.")
        if self.region is not None and region != self.region:
            raise _Reject(400, "AuthorizationHeaderMalformed",
                          f"the region '{region}' is wrong; expecting '{self.region}'")
        if "host" not in rec.signed_headers:
            raise _Reject(403, "AccessDenied", "the host header is not signed")
        unsigned = sorted(h for h in req.headers
                          if h.startswith("x-amz-") and h not in rec.signed_headers)
        if unsigned:
            raise _Reject(403, "AccessDenied", "There were headers present in the request which "
                                               "were not signed: " + ", ".join(unsigned))
        missing = [h for h in rec.signed_headers if h not in req.headers]
        if missing:
            raise _Reject(403, "SignatureDoesNotMatch",
                          "signed headers missing from the request: " + ", ".join(missing))
        amz_date = req.header("x-amz-date")
        if amz_date is not None:
            if "x-amz-date" not in rec.signed_headers:
                raise _Reject(403, "AccessDenied", "x-amz-date is not signed")
            try:
                when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=datetime.timezone.utc)
            except ValueError:
                raise _Reject(403, "AccessDenied", "X-Amz-Date is not YYYYMMDDTHHMMSSZ")
        elif req.header("date") is not None and "date" in rec.signed_headers:
            try:
                when = email.utils.parsedate_to_datetime(req.header("date"))
            except (TypeError, ValueError):
                raise _Reject(403, "AccessDenied", "Date is not an HTTP date")
            amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        else:
            raise _Reject(403, "AccessDenied", "no signed X-Amz-Date or Date")
        if abs(when.timestamp() - time.time()) > self.max_skew:
            raise _Reject(403, "RequestTimeTooSkewed", "The difference between the request "
                          "time and the current time is too large.")
        if scope_date != amz_date[:8]:
            raise _Reject(403, "SignatureDoesNotMatch", "the credential scope's date is not "
                                                        "the request's")
        token = req.header("x-amz-security-token")
        if token is not None:
            rec.security_token = self.session_token is not None and hmac.compare_digest(
                token.encode(), self.session_token.encode())
        if self.session_token is not None and token is None:
            raise _Reject(403, "InvalidToken", "no X-Amz-Security-Token for a temporary key")
        if token is not None and not rec.security_token:
            raise _Reject(403, "InvalidToken", "The provided token is malformed or otherwise "
                                               "invalid.")

        body = req.body
        declared = req.header("x-amz-content-sha256")
        if declared is None:
            if service == "s3":
                raise _Reject(400, "InvalidRequest", "Missing required header for this request: "
                                                     "x-amz-content-sha256")
            rec.payload_hash, payload_hash = "body", hashlib.sha256(body).hexdigest()
        elif _HEX64.fullmatch(declared):
            rec.payload_hash, payload_hash = "sha256", declared
        elif declared in (UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER):
            rec.payload_hash, payload_hash = declared, declared
        else:
            rec.payload_hash = declared
            raise _Reject(400, "InvalidRequest", "this test upstream does not take the payload "
                                                 "hash " + declared[:60])

        canonical_headers = "".join(
            f"{h}:{','.join(' '.join(v.split()) for v in req.headers[h])}\n"
            for h in rec.signed_headers)
        canonical_request = "\n".join([
            req.method, canonical_uri(req.path, service), canonical_query(req.query),
            canonical_headers, signed, payload_hash])
        scope = f"{scope_date}/{region}/{service}/aws4_request"
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = hmac.new(signing_key(self.secret_access_key, scope_date, region, service),
                            string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _Reject(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature "
                          "you provided. Check your key and signing method.")
        # The signature holds; now the body must be the one it promised.
        if rec.payload_hash == "sha256" and hashlib.sha256(body).hexdigest() != declared:
            raise _Reject(400, "XAmzContentSHA256Mismatch", "The provided "
                          "'x-amz-content-sha256' header does not match what was computed.")
        if declared == STREAMING_UNSIGNED_TRAILER:
            try:
                body = _aws_chunked_decode(body)
            except ValueError:
                raise _Reject(400, "IncompleteBody", "malformed aws-chunked body")
        return body

    def _error(self, service, req, status, code, message):
        request_id = secrets.token_hex(8).upper()
        if service in (None, "s3"):
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + escape(code)
                   + "</Code><Message>" + escape(message) + "</Message><RequestId>"
                   + request_id + "</RequestId></Error>")
        elif "json" in (req.header("content-type") or ""):
            return _json(status, {"__type": code, "message": message},
                         [("x-amzn-RequestId", request_id)])
        else:
            xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>" + escape(code) + "</Code>"
                   "<Message>" + escape(message) + "</Message></Error><RequestId>" + request_id
                   + "</RequestId></ErrorResponse>")
        return status, [("Content-Type", "application/xml"),
                        ("x-amz-request-id", request_id)], xml.encode()

    # --- generic services ---------------------------------------------------------------------

    def _service(self, req, rec, body):
        params = dict(urllib.parse.parse_qsl(req.query))
        if (req.header("content-type") or "").startswith("application/x-www-form-urlencoded"):
            params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        rec.operation = params.get("Action")
        if rec.service == "sts" and rec.operation == "GetCallerIdentity":
            xml = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                   "<GetCallerIdentityResult>"
                   f"<Arn>arn:aws:iam::{self.ACCOUNT}:user/airlock-test</Arn>"
                   "<UserId>AIDAAIRLOCKTESTUSER01</UserId>"
                   f"<Account>{self.ACCOUNT}</Account></GetCallerIdentityResult>"
                   "<ResponseMetadata><RequestId>" + secrets.token_hex(8) + "</RequestId>"
                   "</ResponseMetadata></GetCallerIdentityResponse>")
            return 200, [("Content-Type", "text/xml")], xml.encode()
        return _json(200, {"service": rec.service, "region": rec.region, "verified": True,
                           "action": rec.operation,
                           "body_sha256": hashlib.sha256(body).hexdigest()})

    # --- S3 -----------------------------------------------------------------------------------

    def _bucket_key(self, req):
        host = (req.header("host") or "").lower()
        if not host.startswith("["):  # a name (or IPv4 address) and maybe a port
            host = host.rsplit(":", 1)[0]
        suffix = (self.virtual_host_suffix or "").lower()
        if suffix and host.endswith("." + suffix):
            return host[:-len(suffix) - 1], urllib.parse.unquote(req.path.lstrip("/"))
        bucket, _, key = req.path.lstrip("/").partition("/")
        return urllib.parse.unquote(bucket), urllib.parse.unquote(key)

    def _s3(self, req, rec, body):
        bucket, key = self._bucket_key(req)
        q = urllib.parse.parse_qs(req.query, keep_blank_values=True)
        q = {k: v[0] for k, v in q.items() if k != "x-id"}  # x-id: newer SDKs name the call
        m = req.method
        if not bucket:
            rec.operation = "ListBuckets"
            if m != "GET":
                raise _Reject(405, "MethodNotAllowed", "method not allowed")
            return self._list_buckets()
        if not key:
            if m == "PUT" and not q:
                rec.operation = "CreateBucket"
                with self.lock:
                    self.buckets.add(bucket)
                return 200, [("Location", "/" + bucket)], b""
            if bucket not in self.buckets:
                raise _Reject(404, "NoSuchBucket", "The specified bucket does not exist")
            if m == "HEAD" and not q:
                rec.operation = "HeadBucket"
                return 200, [("x-amz-bucket-region", rec.region)], b""
            if m == "GET" and "location" in q:
                rec.operation = "GetBucketLocation"
                return 200, [("Content-Type", "application/xml")], (
                    '<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://'
                    's3.amazonaws.com/doc/2006-03-01/">' + escape(rec.region)
                    + "</LocationConstraint>").encode()
            if m == "GET" and not set(q) - {"list-type", "prefix", "delimiter", "max-keys",
                                             "continuation-token", "start-after",
                                             "encoding-type", "marker", "fetch-owner"}:
                rec.operation = "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
                return self._list(bucket, q, v2=q.get("list-type") == "2")
            raise _Reject(501, "NotImplemented", "this test upstream does not implement that")
        if bucket not in self.buckets:
            raise _Reject(404, "NoSuchBucket", "The specified bucket does not exist")
        if "uploads" in q or "uploadId" in q:
            return self._multipart(req, rec, bucket, key, q, body)
        if q and not (m == "GET" and set(q) <= {"versionId", "partNumber"}):
            raise _Reject(501, "NotImplemented", "this test upstream does not implement that")
        if m == "PUT":
            rec.operation = "PutObject"
            if req.header("x-amz-copy-source"):
                raise _Reject(501, "NotImplemented", "CopyObject is not implemented")
            md5 = req.header("content-md5")
            if md5 is not None and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
                raise _Reject(400, "BadDigest", "The Content-MD5 you specified did not match "
                                                "what we received.")
            etag = '"' + hashlib.md5(body).hexdigest() + '"'
            with self.lock:
                self.objects[(bucket, key)] = {
                    "data": body, "etag": etag,
                    "content_type": req.header("content-type") or "binary/octet-stream",
                    "metadata": {k: v[0] for k, v in req.headers.items()
                                 if k.startswith("x-amz-meta-")},
                    "last_modified": int(time.time())}
            return 200, [("ETag", etag)], b""
        if m == "DELETE":
            rec.operation = "DeleteObject"
            with self.lock:
                self.objects.pop((bucket, key), None)
            return 204, [], b""
        if m not in ("GET", "HEAD"):
            raise _Reject(405, "MethodNotAllowed", "method not allowed")
        rec.operation = "GetObject" if m == "GET" else "HeadObject"
        with self.lock:
            obj = self.objects.get((bucket, key))
        if obj is None:
            raise _Reject(404, "NoSuchKey", "The specified key does not exist.")
        data = obj["data"]
        headers = [("ETag", obj["etag"]), ("Content-Type", obj["content_type"]),
                   ("Last-Modified", email.utils.formatdate(obj["last_modified"], usegmt=True)),
                   ("Accept-Ranges", "bytes")] + list(obj["metadata"].items())
        status = 200
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", req.header("range") or "")
        if rng and (rng.group(1) or rng.group(2)) and data:
            first, last = rng.groups()
            if first:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            else:
                start, end = max(len(data) - int(last), 0), len(data) - 1
            if start >= len(data) or start > end:
                raise _Reject(416, "InvalidRange", "The requested range is not satisfiable")
            headers.append(("Content-Range", f"bytes {start}-{end}/{len(data)}"))
            data, status = data[start:end + 1], 206
        headers.append(("Content-Length", str(len(data))))
        return status, headers, data if m == "GET" else b""

    def _multipart(self, req, rec, bucket, key, q, body):
        """CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload."""
        m = req.method
        ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
        if m == "POST" and "uploads" in q:
            rec.operation = "CreateMultipartUpload"
            upload_id = secrets.token_urlsafe(24)
            with self.lock:
                self._uploads[upload_id] = {
                    "bucket": bucket, "key": key, "parts": {},
                    "content_type": req.header("content-type") or "binary/octet-stream",
                    "metadata": {k: v[0] for k, v in req.headers.items()
                                 if k.startswith("x-amz-meta-")}}
            return 200, [("Content-Type", "application/xml")], (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult {ns}>'
                f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>").encode()
        with self.lock:
            upload = self._uploads.get(q.get("uploadId"))
        if upload is None or (upload["bucket"], upload["key"]) != (bucket, key):
            raise _Reject(404, "NoSuchUpload", "The specified upload does not exist.")
        if m == "PUT" and "partNumber" in q:
            rec.operation = "UploadPart"
            md5 = req.header("content-md5")
            if md5 is not None and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
                raise _Reject(400, "BadDigest", "The Content-MD5 you specified did not match "
                                                "what we received.")
            etag = '"' + hashlib.md5(body).hexdigest() + '"'
            with self.lock:
                upload["parts"][int(q["partNumber"])] = (etag, body)
            return 200, [("ETag", etag)], b""
        if m == "DELETE":
            rec.operation = "AbortMultipartUpload"
            with self.lock:
                self._uploads.pop(q["uploadId"], None)
            return 204, [], b""
        if m == "POST":
            rec.operation = "CompleteMultipartUpload"
            try:
                root = ElementTree.fromstring(body)
            except ElementTree.ParseError:
                raise _Reject(400, "MalformedXML", "The XML you provided was not well-formed")
            wanted = [(int(p.findtext("{*}PartNumber") or p.findtext("PartNumber")),
                       p.findtext("{*}ETag") or p.findtext("ETag"))
                      for p in root.iter() if p.tag.rsplit("}", 1)[-1] == "Part"]
            with self.lock:
                parts = upload["parts"]
                if not wanted or any(n not in parts or parts[n][0] != etag
                                     for n, etag in wanted):
                    raise _Reject(400, "InvalidPart", "One or more of the specified parts "
                                                      "could not be found.")
                data = b"".join(parts[n][1] for n, _ in wanted)
                digest = hashlib.md5(b"".join(bytes.fromhex(parts[n][0].strip('"'))
                                              for n, _ in wanted)).hexdigest()
                etag = f'"{digest}-{len(wanted)}"'
                self.objects[(bucket, key)] = {
                    "data": data, "etag": etag, "content_type": upload["content_type"],
                    "metadata": upload["metadata"], "last_modified": int(time.time())}
                self._uploads.pop(q["uploadId"], None)
            return 200, [("Content-Type", "application/xml")], (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult {ns}>'
                f"<Location>/{escape(bucket)}/{escape(key)}</Location><Bucket>{escape(bucket)}"
                f"</Bucket><Key>{escape(key)}</Key><ETag>{escape(etag)}</ETag>"
                "</CompleteMultipartUploadResult>").encode()
        raise _Reject(501, "NotImplemented", "this test upstream does not implement that")

    def _list_buckets(self):
        with self.lock:
            names = sorted(self.buckets)
        items = "".join(f"<Bucket><Name>{escape(b)}</Name><CreationDate>2024-05-01T12:00:00.000Z"
                        "</CreationDate></Bucket>" for b in names)
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.'
               'amazonaws.com/doc/2006-03-01/"><Owner><ID>airlock</ID></Owner><Buckets>' + items
               + "</Buckets></ListAllMyBucketsResult>")
        return 200, [("Content-Type", "application/xml")], xml.encode()

    def _list(self, bucket, q, v2):
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = int(q.get("max-keys", "1000") or 1000)
        url = q.get("encoding-type") == "url"
        enc = (lambda s: urllib.parse.quote_plus(s, safe="/")) if url else (lambda s: s)
        after = q.get("start-after", "") if v2 else q.get("marker", "")
        if v2 and q.get("continuation-token"):
            after = base64.urlsafe_b64decode(q["continuation-token"]).decode()
        with self.lock:
            keys = sorted((k, o) for (b, k), o in self.objects.items() if b == bucket)
        contents, prefixes, truncated, last = [], [], False, None
        for k, o in keys:
            if not k.startswith(prefix) or k <= after:
                continue
            if delim and delim in k[len(prefix):]:
                cp = k[:len(prefix) + k[len(prefix):].index(delim) + len(delim)]
                if cp in prefixes:
                    continue
                item = ("p", cp)
            else:
                item = ("k", k, o)
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if item[0] == "p":
                prefixes.append(item[1])
            else:
                contents.append(item[1:])
            last = item[1]
        x = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.'
             'amazonaws.com/doc/2006-03-01/">', f"<Name>{escape(bucket)}</Name>",
             f"<Prefix>{escape(enc(prefix))}</Prefix>", f"<MaxKeys>{max_keys}</MaxKeys>",
             f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delim:
            x.append(f"<Delimiter>{escape(enc(delim))}</Delimiter>")
        if url:
            x.append("<EncodingType>url</EncodingType>")
        if v2:
            x.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
            if q.get("continuation-token"):
                x.append(f"<ContinuationToken>{escape(q['continuation-token'])}"
                         "</ContinuationToken>")
            if q.get("start-after"):
                x.append(f"<StartAfter>{escape(enc(q['start-after']))}</StartAfter>")
            if truncated:
                token = base64.urlsafe_b64encode(last.encode()).decode()
                x.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
        else:
            x.append(f"<Marker>{escape(enc(q.get('marker', '')))}</Marker>")
            if truncated:
                x.append(f"<NextMarker>{escape(enc(last))}</NextMarker>")
        for k, o in contents:
            lm = datetime.datetime.fromtimestamp(o["last_modified"], datetime.timezone.utc)
            x.append(f"<Contents><Key>{escape(enc(k))}</Key><LastModified>"
                     f"{lm.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified><ETag>"
                     f"{escape(o['etag'])}</ETag><Size>{len(o['data'])}</Size>"
                     "<StorageClass>STANDARD</StorageClass></Contents>")
        for p in prefixes:
            x.append(f"<CommonPrefixes><Prefix>{escape(enc(p))}</Prefix></CommonPrefixes>")
        x.append("</ListBucketResult>")
        return 200, [("Content-Type", "application/xml")], "".join(x).encode()


# --- a model API that reflects credentials ----------------------------------------------------

class EchoApi(HttpsServer):
    """A model-API-like endpoint (POST /v1/chat, /v1/messages, any path and method) that
    reflects the credentials it was sent, as debug endpoints and error pages do: each of
    `echo_headers` (default Authorization and X-Api-Key) comes back in a response header
    X-Echo-<Name>, and the JSON body is {"method", "path", "query", "authorization",
    "x-api-key", "headers" (every header, first value), "body" (the request body as text),
    "json" (parsed, or null)}. A JSON request with "stream": true is answered as Server-Sent
    Events, chunked, the echo split across two chunks. (tls_upstreams.HttpsUpstream's /echo is
    the minimal version of this.)

    `accept`: None (every request is answered 200), a set of accepted bearer tokens, or a
    callable(Authorization value) -> bool (e.g. `lambda a: token_endpoint.is_valid(
    bearer_token(a))`); a refused request is answered 401, still echoing.

    Records: `requests` (HttpRequest: headers, body), `authorizations` (every Authorization value
    received, None when absent)."""

    def __init__(self, address, port, cert, key, accept=None,
                 echo_headers=("authorization", "x-api-key")):
        super().__init__(address, port, cert, key)
        self.accept = accept
        self.echo_headers = [h.lower() for h in echo_headers]
        self.authorizations = []

    def reset(self):
        super().reset()
        with self.lock:
            self.authorizations.clear()

    def _accepted(self, auth):
        if self.accept is None:
            return True
        if callable(self.accept):
            return bool(self.accept(auth))
        return bearer_token(auth) in self.accept

    def handle(self, req):
        auth = req.header("authorization")
        with self.lock:
            self.authorizations.append(auth)
        try:
            parsed = json.loads(req.body) if req.body else None
        except ValueError:
            parsed = None
        echo = {"method": req.method, "path": req.path, "query": req.query,
                "authorization": auth, "x-api-key": req.header("x-api-key"),
                "headers": {k: v[0] for k, v in req.headers.items()},
                "body": req.body.decode("utf-8", "replace"), "json": parsed}
        status = 200 if self._accepted(auth) else 401
        headers = [("X-Echo-" + "-".join(p.capitalize() for p in h.split("-")), req.header(h))
                   for h in self.echo_headers if req.header(h) is not None]
        if status == 200 and isinstance(parsed, dict) and parsed.get("stream") is True:
            event = ("data: " + json.dumps(echo) + "\n\n").encode()
            half = len(event) // 2
            return 200, headers + [("Content-Type", "text/event-stream"),
                                   ("Cache-Control", "no-cache")], iter(
                [event[:half], event[half:], b"data: [DONE]\n\n"])
        if status == 401:
            echo["error"] = {"type": "authentication_error", "message": "invalid credentials"}
        return _json(status, echo, headers)
