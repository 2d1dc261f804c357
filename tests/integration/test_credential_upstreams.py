"""Self-test of credential_upstreams.py, without the gateway: real clients (requests, boto3, the
aws CLI, git) talk straight to the test upstreams over loopback with the test CA trusted, and
the upstreams must accept what a real service accepts and refuse what it refuses. In-process
clients reach the test host names through a patched resolver; git is told where they are with
http.curloptResolve, and the aws CLI uses localhost.
(PYTEST_DONT_REWRITE: a failed assertion shows its message, never the compared values,
which may be tokens or placeholders.)"""
import base64
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.parse

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from credential_upstreams import (EchoApi, GitHubApi, S3Upstream, TokenEndpoint, app_jwt,
                                  bearer_token, rsa_key_pair)
from tls_upstreams import Pki

NAMES = ["token.example.test", "github.example.test", "api.github.example.test",
         "s3.example.test", "*.s3.example.test", "sts.example.test", "model.example.test",
         "localhost"]
TOKEN_ADDR, GITHUB_ADDR, S3_ADDR, ECHO_ADDR = "127.0.0.40", "127.0.0.41", "127.0.0.42", \
    "127.0.0.43"
AKID = "AKIAAIRLOCKTEST00001"
# No proxy, and no CA bundle, git or AWS setting from this machine's environment.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
             and not k.startswith(("AWS_", "GIT_", "SSL_", "CURL_", "REQUESTS_"))}


@pytest.fixture(autouse=True)
def no_canary_hits():
    """Overrides conftest's: these tests start no gateway, and run outside the test network
    namespace too, where the canary addresses do not exist."""
    yield


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.good = p.leaf("credential-upstreams", NAMES)
    return p


@pytest.fixture
def resolve(monkeypatch):
    """name -> address, for clients in this process."""
    names = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(names.get(host, host), *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy") or k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return names


# --- TokenEndpoint ----------------------------------------------------------------------------

def test_token_endpoint_issues_tokens_to_the_right_client(pki, resolve):
    secret = "s3cr:t+/" + secrets.token_hex(8)  # needs form-urlencoding inside Basic
    with TokenEndpoint(TOKEN_ADDR, 0, *pki.good, client_id="agent id", client_secret=secret,
                       expires_in=120) as t:
        resolve["token.example.test"] = TOKEN_ADDR
        url = t.url("token.example.test", "/token")
        basic = base64.b64encode((urllib.parse.quote_plus("agent id") + ":"
                                  + urllib.parse.quote_plus(secret)).encode()).decode()
        r = requests.post(url, data={"grant_type": "client_credentials", "scope": "read write",
                                     "audience": "https://api.example.test"},
                          headers={"Authorization": "Basic " + basic}, verify=pki.ca_cert)
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["token_type"] == "Bearer" and first["expires_in"] == 120
        assert r.headers["Cache-Control"] == "no-store"
        assert t.last_scope == "read write" and t.last_audience == "https://api.example.test"
        assert t.token_requests[-1]["auth_method"] == "basic"

        r = requests.post(url, data={"grant_type": "client_credentials", "client_id": "agent id",
                                     "client_secret": secret}, verify=pki.ca_cert)
        assert r.status_code == 200, r.text
        second = r.json()["access_token"]
        assert second != first["access_token"]
        assert t.issued_tokens == [first["access_token"], second]
        assert t.is_valid(second) and not t.is_valid("nope")
        assert t.token_requests[-1]["auth_method"] == "post" and t.last_scope is None

        wrong = requests.post(url, data={"grant_type": "client_credentials"},
                              auth=("agent id", "wrong"), verify=pki.ca_cert)
        assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
        assert wrong.headers["WWW-Authenticate"].startswith("Basic")
        wrong = requests.post(url, data={"grant_type": "client_credentials",
                                         "client_id": "agent id", "client_secret": "wrong"},
                              verify=pki.ca_cert)
        assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_client"}
        both = requests.post(url, data={"grant_type": "client_credentials",
                                        "client_secret": secret},
                             headers={"Authorization": "Basic " + basic}, verify=pki.ca_cert)
        assert both.status_code == 400 and both.json() == {"error": "invalid_request"}
        grant = requests.post(url, data={"grant_type": "password"},
                              headers={"Authorization": "Basic " + basic}, verify=pki.ca_cert)
        assert grant.status_code == 400 and grant.json() == {"error": "unsupported_grant_type"}

        t.fail = 500
        assert requests.post(url, data={"grant_type": "client_credentials"},
                             headers={"Authorization": "Basic " + basic},
                             verify=pki.ca_cert).status_code == 500
        t.fail = 400
        r = requests.post(url, data={"grant_type": "client_credentials"},
                          headers={"Authorization": "Basic " + basic}, verify=pki.ca_cert)
        assert r.status_code == 400 and r.json() == {"error": "invalid_client"}
        assert t.request_count == 8 and len(t.issued_tokens) == 2
        assert [r["status"] for r in t.token_requests] == [200, 200, 401, 400, 400, 400, 500,
                                                             400]


# --- GitHubApi --------------------------------------------------------------------------------

def test_github_app_jwt_is_verified_and_tokens_work_on_the_api(pki, resolve):
    private, public = rsa_key_pair()
    other, _ = rsa_key_pair()
    with GitHubApi(GITHUB_ADDR, 0, *pki.good, app_id=4242, public_key=public,
                   installation_id=77, token_ttl=900) as gh:
        resolve["api.github.example.test"] = GITHUB_ADDR
        url = gh.url("api.github.example.test", "/app/installations/77/access_tokens")

        def exchange(jwt, path=url, body=None):
            return requests.post(path, json=body, verify=pki.ca_cert,
                                 headers={"Authorization": "Bearer " + jwt,
                                          "Accept": "application/vnd.github+json"})

        body = {"repositories": ["demo"], "permissions": {"contents": "read"}}
        r = exchange(app_jwt(private, 4242), body=body)
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        assert token.startswith("ghs_") and r.json()["expires_at"].endswith("Z")
        assert r.json()["permissions"] == {"contents": "read"}
        assert gh.token_requests[-1]["body"] == body
        assert gh.token_requests[-1]["claims"]["iss"] == 4242
        r2 = exchange(app_jwt(private, "4242"))  # iss as a string
        assert r2.status_code == 201 and gh.issued_tokens == [token, r2.json()["token"]]

        for bad in (app_jwt(other, 4242),                                       # wrong key
                    app_jwt(private, 4243),                                     # wrong app
                    app_jwt(private, 4242, iat=int(time.time()) + 300),
                    app_jwt(private, 4242, exp=int(time.time()) + 3600),
                    app_jwt(private, 4242, iat=1700000000),                     # expired
                    "not.a.jwt"):
            r = exchange(bad)
            assert r.status_code == 401 and "message" in r.json()
        head, claims, sig = app_jwt(private, 4242).split(".")
        hs256 = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
        assert exchange(f"{hs256}.{claims}.{sig}").status_code == 401
        assert exchange(app_jwt(private, 4242),
                        url.replace("/77/", "/78/")).status_code == 404
        assert len(gh.issued_tokens) == 2

        api = gh.url("api.github.example.test")
        for auth in ("Bearer " + token, "token " + token):
            r = requests.get(api + "/user", headers={"Authorization": auth}, verify=pki.ca_cert)
            assert r.status_code == 200 and r.json()["login"] == "airlock-test"
        r = requests.get(api + "/repos/acme/demo", headers={"Authorization": "token " + token},
                         verify=pki.ca_cert)
        assert r.status_code == 200 and r.json()["full_name"] == "acme/demo"
        for auth in (None, "Bearer ghs_wrong", "Basic " + token):
            r = requests.get(api + "/user", headers={"Authorization": auth} if auth else {},
                             verify=pki.ca_cert)
            assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
        gh.revoke(token)
        assert requests.get(api + "/user", headers={"Authorization": "Bearer " + token},
                            verify=pki.ca_cert).status_code == 401
        gh.accept("ghp_static")
        assert requests.get(api + "/api/v3/user", headers={"Authorization": "token ghp_static"},
                            verify=pki.ca_cert).status_code == 200
        assert gh.authorizations[-1] == "token ghp_static"


def _git(*args, cwd=None, env=None, check=True):
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr.decode()
    return out


def test_git_clone_and_push_need_an_accepted_token(pki, tmp_path):
    with GitHubApi(GITHUB_ADDR, 0, *pki.good, git_root=str(tmp_path / "served")) as gh:
        bare, head = gh.make_repo("acme", "demo", {"README.md": "known content\n"})
        # Forty branches on forty commits: the fetch request is large enough for git to gzip.
        env = dict(CLEAN_ENV, HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1",
                   GIT_TERMINAL_PROMPT="0", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
        tree = _git("rev-parse", head + "^{tree}", cwd=bare, env=env).stdout.decode().strip()
        parent = head
        for i in range(40):
            parent = _git("commit-tree", tree, "-p", parent, "-m", f"c{i}", cwd=bare,
                          env=env).stdout.decode().strip()
            _git("update-ref", f"refs/heads/b{i}", parent, cwd=bare, env=env)
        token = "ghs_" + secrets.token_hex(18)
        gh.accept(token)
        url = gh.url("github.example.test", "/acme/demo.git")
        common = ["-c", f"http.sslCAInfo={pki.ca_cert}",
                  "-c", f"http.curloptResolve=github.example.test:{gh.port}:{GITHUB_ADDR}",
                  "-c", "credential.helper="]
        helper = ["-c", "credential.helper=!f() { test \"$1\" = get && "
                  "echo username=x-access-token && echo \"password=$TEST_GIT_TOKEN\"; }; f"]

        out = _git(*common, "clone", "-q", url, str(tmp_path / "nope"), env=env, check=False)
        assert out.returncode != 0 and not (tmp_path / "nope" / "README.md").exists()
        assert gh.git_requests and not any(r["authorized"] for r in gh.git_requests)
        assert gh.requests[0].status == 401
        env_bad = dict(env, TEST_GIT_TOKEN="ghs_wrong")
        assert _git(*common, *helper, "clone", "-q", url, str(tmp_path / "nope2"),
                    env=env_bad, check=False).returncode != 0

        gh.reset()
        env_ok = dict(env, TEST_GIT_TOKEN=token)
        work = tmp_path / "clone"
        _git(*common, *helper, "clone", "-q", url, str(work), env=env_ok)
        assert (work / "README.md").read_text() == "known content\n"
        assert gh.git_requests[0]["authorized"] is False  # git asks first without credentials
        assert gh.requests[0].header("authorization") is None and gh.requests[0].status == 401
        assert any(r["authorized"] and r["user"] == "x-access-token" for r in gh.git_requests)
        assert any(r["content_encoding"] == "gzip" for r in gh.git_requests)

        # A push larger than git's post buffer: the pack goes chunked.
        (work / "big.bin").write_bytes(os.urandom(3 << 20))
        _git("add", "big.bin", cwd=work, env=env_ok)
        _git("commit", "-q", "-m", "big", cwd=work, env=env_ok)
        _git(*common, *helper, "push", "-q", "origin", "HEAD:main", cwd=work, env=env_ok)
        pushed = _git("rev-parse", "HEAD", cwd=work, env=env_ok).stdout.strip()
        assert _git("rev-parse", "main", cwd=bare, env=env).stdout.strip() == pushed
        assert any(r["service"] == "git-receive-pack" and r["chunked"]
                   for r in gh.git_requests)


# --- S3Upstream -------------------------------------------------------------------------------

def _s3(endpoint, ca, secret, akid=AKID, token=None, **s3cfg):
    s3cfg.setdefault("addressing_style", "path")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=akid,
        aws_secret_access_key=secret, aws_session_token=token, verify=ca,
        config=Config(s3=s3cfg, retries={"max_attempts": 1}))


def test_s3_verifies_sigv4_from_boto3(pki, resolve):
    secret = secrets.token_urlsafe(30)
    with S3Upstream(S3_ADDR, 0, *pki.good, access_key_id=AKID, secret_access_key=secret,
                    region="us-east-1", virtual_host_suffix="s3.example.test") as s3:
        resolve["s3.example.test"] = S3_ADDR
        resolve["test-bucket.s3.example.test"] = S3_ADDR
        endpoint = s3.url("s3.example.test")
        c = _s3(endpoint, pki.ca_cert, secret)
        key = "dir/a file+name~(1).txt"
        c.put_object(Bucket="test-bucket", Key=key, Body=b"hello s3",
                     ContentType="text/plain", Metadata={"origin": "test"})
        assert s3.get_object("test-bucket", key) == b"hello s3"
        got = c.get_object(Bucket="test-bucket", Key=key)
        assert got["Body"].read() == b"hello s3" and got["Metadata"] == {"origin": "test"}
        assert c.head_object(Bucket="test-bucket", Key=key)["ContentLength"] == 8
        assert c.get_object(Bucket="test-bucket", Key=key, Range="bytes=6-")["Body"].read() \
            == b"s3"
        listed = c.list_objects_v2(Bucket="test-bucket", Prefix="dir/")
        assert [o["Key"] for o in listed["Contents"]] == [key]
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket="test-bucket", Key="missing")
        assert e.value.response["Error"]["Code"] == "NoSuchKey"
        assert all(r.verified and r.access_key_id == AKID for r in s3.auth)
        assert {r.payload_hash for r in s3.auth} <= {"sha256", "UNSIGNED-PAYLOAD"}

        # Signed payloads, and virtual-hosted addressing.
        signed = _s3(endpoint, pki.ca_cert, secret, payload_signing_enabled=True,
                     addressing_style="virtual")
        s3.reset()
        signed.put_object(Bucket="test-bucket", Key="signed", Body=b"x" * 1000)
        assert s3.auth[-1].payload_hash == "sha256" and s3.auth[-1].verified
        assert s3.requests[-1].header("host").startswith("test-bucket.s3.example.test")
        assert s3.get_object("test-bucket", "signed") == b"x" * 1000

        s3.reset()
        with pytest.raises(ClientError) as e:
            _s3(endpoint, pki.ca_cert, "wrong-secret").put_object(Bucket="test-bucket",
                                                                   Key="k", Body=b"nope")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        assert s3.auth[-1].access_key_id == AKID and not s3.auth[-1].verified
        assert s3.get_object("test-bucket", "k") is None
        with pytest.raises(ClientError) as e:
            _s3(endpoint, pki.ca_cert, secret, akid="AKIAOTHER").get_object(
                Bucket="test-bucket", Key=key)
        assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        assert s3.auth[-1].access_key_id == "AKIAOTHER" and not s3.auth[-1].verified
        with pytest.raises(ClientError) as e:
            _s3(endpoint, pki.ca_cert, secret, token="unexpected").get_object(
                Bucket="test-bucket", Key=key)
        assert e.value.response["Error"]["Code"] == "InvalidToken"


def test_s3_session_token_and_payload_checks(pki, resolve):
    secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(60)
    with S3Upstream(S3_ADDR, 0, *pki.good, access_key_id=AKID, secret_access_key=secret,
                    session_token=token) as s3:
        resolve["s3.example.test"] = S3_ADDR
        endpoint = s3.url("s3.example.test")
        _s3(endpoint, pki.ca_cert, secret, token=token).put_object(
            Bucket="test-bucket", Key="t", Body=b"with token")
        assert s3.auth[-1].verified and s3.auth[-1].security_token is True
        for t in (None, "wrong"):
            with pytest.raises(ClientError) as e:
                _s3(endpoint, pki.ca_cert, secret, token=t).get_object(Bucket="test-bucket",
                                                                       Key="t")
            assert e.value.response["Error"]["Code"] == "InvalidToken"

        creds = Credentials(AKID, secret, token)

        def signed(body, auth=S3SigV4Auth):
            req = AWSRequest(method="PUT", url=endpoint + "/test-bucket/raw", data=body)
            auth(creds, "s3", "us-east-1").add_auth(req)
            return dict(req.headers.items())

        class StreamingAuth(S3SigV4Auth):  # what a signed aws-chunked upload declares
            def payload(self, request):
                return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

        h = signed(b"original")
        assert requests.put(endpoint + "/test-bucket/raw", data=b"original", headers=h,
                            verify=pki.ca_cert).status_code == 200
        r = requests.put(endpoint + "/test-bucket/raw", data=b"tampered", headers=h,
                         verify=pki.ca_cert)
        assert r.status_code == 400 and b"XAmzContentSHA256Mismatch" in r.content
        r = requests.put(endpoint + "/test-bucket/raw", data=b"original",
                         headers=dict(h, **{"X-Amz-Meta-Late": "added after signing"}),
                         verify=pki.ca_cert)
        assert r.status_code == 403 and b"AccessDenied" in r.content
        h = signed(b"5\r\nhello\r\n0\r\n\r\n", StreamingAuth)
        assert h["X-Amz-Content-SHA256"] == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        r = requests.put(endpoint + "/test-bucket/raw", data=b"5\r\nhello\r\n0\r\n\r\n",
                         headers=h, verify=pki.ca_cert)
        assert r.status_code == 400 and b"InvalidRequest" in r.content
        assert s3.auth[-1].payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        assert not s3.auth[-1].verified
        assert s3.get_object("test-bucket", "raw") == b"original"


def test_generic_sigv4_post_hashes_the_body(pki, resolve):
    secret = secrets.token_urlsafe(30)
    with S3Upstream(S3_ADDR, 0, *pki.good, access_key_id=AKID, secret_access_key=secret) as svc:
        resolve["sts.example.test"] = S3_ADDR
        url = svc.url("sts.example.test", "/sts")
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        req = AWSRequest(method="POST", url=url, data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(AKID, secret), "sts", "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
        assert "X-Amz-Content-SHA256" not in headers
        r = requests.post(url, data=body, headers=headers, verify=pki.ca_cert)
        assert r.status_code == 200 and b"<Account>123456789012</Account>" in r.content
        rec = svc.auth[-1]
        assert rec.verified and rec.service == "sts" and rec.payload_hash == "body"
        assert rec.operation == "GetCallerIdentity"
        r = requests.post(url, data=body.replace(b"2011", b"2012"), headers=headers,
                          verify=pki.ca_cert)
        assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
        assert not svc.auth[-1].verified

        sts = boto3.session.Session().client(
            "sts", endpoint_url=svc.url("sts.example.test"), region_name="us-east-1",
            aws_access_key_id=AKID, aws_secret_access_key=secret, verify=pki.ca_cert)
        assert sts.get_caller_identity()["Account"] == "123456789012"
        assert svc.auth[-1].verified


@pytest.mark.skipif(not os.path.exists("/usr/bin/aws"), reason="Debian's awscli not installed")
def test_aws_cli_copies_to_and_from_s3(pki, tmp_path):
    secret = secrets.token_urlsafe(30)
    # localhost: the one test name the aws CLI (another process) can resolve.
    with S3Upstream("127.0.0.1", 0, *pki.good, access_key_id=AKID,
                    secret_access_key=secret, region="eu-west-1") as s3:
        config = tmp_path / "aws-config"
        config.write_text("[default]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n")
        env = dict(CLEAN_ENV, HOME=str(tmp_path), AWS_CONFIG_FILE=str(config),
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_ACCESS_KEY_ID=AKID,
                   AWS_SECRET_ACCESS_KEY=secret, AWS_CA_BUNDLE=pki.ca_cert,
                   AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        endpoint = ["--endpoint-url", s3.url("localhost")]

        def aws(*args):
            out = subprocess.run(["/usr/bin/aws", *args, *endpoint], env=env,
                                 capture_output=True, timeout=120)
            assert out.returncode == 0, out.stderr.decode()
            return out.stdout

        data = os.urandom(100 << 10)
        (tmp_path / "upload.bin").write_bytes(data)
        aws("s3", "cp", str(tmp_path / "upload.bin"), "s3://test-bucket/dir/upload.bin")
        assert s3.get_object("test-bucket", "dir/upload.bin") == data
        assert b"upload.bin" in aws("s3", "ls", "s3://test-bucket/dir/")
        assert aws("s3", "cp", "s3://test-bucket/dir/upload.bin", "-") == data
        # Above the CLI's 8 MiB threshold: a multipart upload.
        big = os.urandom(9 << 20)
        (tmp_path / "big.bin").write_bytes(big)
        aws("s3", "cp", str(tmp_path / "big.bin"), "s3://test-bucket/big.bin")
        assert s3.get_object("test-bucket", "big.bin") == big
        assert s3.auth and all(r.verified and r.access_key_id == AKID for r in s3.auth)
        ops = [r.operation for r in s3.auth]
        assert "PutObject" in ops and "GetObject" in ops and "ListObjectsV2" in ops
        assert "CreateMultipartUpload" in ops and "CompleteMultipartUpload" in ops


# --- EchoApi ----------------------------------------------------------------------------------

def test_echo_api_reflects_credentials(pki, resolve):
    with EchoApi(ECHO_ADDR, 443, *pki.good, accept={"sk-good"}) as echo:
        resolve["model.example.test"] = ECHO_ADDR
        url = echo.url("model.example.test", "/v1/chat")
        assert url == "https://model.example.test/v1/chat"
        r = requests.post(url, json={"model": "m", "messages": []},
                          headers={"Authorization": "Bearer sk-good", "X-Api-Key": "k1"},
                          verify=pki.ca_cert)
        assert r.status_code == 200
        assert r.headers["X-Echo-Authorization"] == "Bearer sk-good"
        assert r.headers["X-Echo-X-Api-Key"] == "k1"
        assert r.json()["authorization"] == "Bearer sk-good"
        assert r.json()["json"] == {"model": "m", "messages": []}
        assert echo.requests[-1].header("x-api-key") == "k1"
        assert json.loads(echo.requests[-1].body) == {"model": "m", "messages": []}

        r = requests.post(url, json={"stream": True},
                          headers={"Authorization": "Bearer sk-good"}, verify=pki.ca_cert)
        assert r.headers["Content-Type"] == "text/event-stream"
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert '"authorization": "Bearer sk-good"' in r.text and r.text.endswith("[DONE]\n\n")

        r = requests.post(url, json={}, headers={"Authorization": "Bearer sk-bad"},
                          verify=pki.ca_cert)
        assert r.status_code == 401 and r.json()["authorization"] == "Bearer sk-bad"
        assert echo.authorizations == ["Bearer sk-good"] * 2 + ["Bearer sk-bad"]
        assert bearer_token(echo.authorizations[0]) == "sk-good"


def test_servers_stop_and_start_again_on_the_same_port(pki, resolve):
    resolve["model.example.test"] = ECHO_ADDR
    echo = EchoApi(ECHO_ADDR, 0, *pki.good).start()
    port = echo.port
    session = requests.Session()  # keeps its connection open across the restart
    url = echo.url("model.example.test", "/v1/chat")
    assert session.get(url, verify=pki.ca_cert).status_code == 200
    echo.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, verify=pki.ca_cert)
    with EchoApi(ECHO_ADDR, port, *pki.good) as again:
        assert session.get(url, verify=pki.ca_cert).status_code == 200
        assert again.connections == 1
