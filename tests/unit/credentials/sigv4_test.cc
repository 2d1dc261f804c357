// SigV4 re-signing: the client's Authorization parsed, canonical requests, and signatures equal
// to botocore's for the same request, keys and time; and the requests that cannot be re-signed.
#include "gateway/credentials/sigv4.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace airlock::credentials {
namespace {

// The expected values below were computed with botocore 1.43.11 (python3), signing at a fixed
// time with the same keys:
//
//   import datetime
//   from unittest import mock
//   from botocore.auth import SigV4Auth, S3SigV4Auth
//   from botocore.awsrequest import AWSRequest
//   from botocore.config import Config
//   from botocore.credentials import Credentials
//   NOW = datetime.datetime(2026, 3, 1, 12, 34, 56)
//   KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
//   def sign(auth_cls, creds, service, region, method, url, headers, params=None, data=None,
//            context=None):
//       req = AWSRequest(method=method, url=url, headers=headers, params=params, data=data)
//       req.context.update(context or {})
//       with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
//           auth_cls(creds, service, region).add_auth(req)
//       return req.headers["Authorization"]
//
// and the call given at each test. botocore signs every header it is given (but User-Agent), so
// it is given exactly the headers the gateway must sign: those the client listed, plus host,
// x-amz-date, x-amz-content-sha256 when sent and x-amz-security-token with a session token.
constexpr char kKeyId[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kClientSignature[] =
    "Signature=0000000000000000000000000000000000000000000000000000000000000000";

TimePoint Now() { return std::chrono::system_clock::from_time_t(1772368496); }  // 20260301T123456Z

Token Keys(std::string session_token = "") {
  Token t;
  t.key_id = kKeyId;
  t.value = kSecret;
  t.session_token = std::move(session_token);
  return t;
}

// The client's Authorization, signed with a placeholder key on another day.
std::string ClientAuthorization(const std::string& region, const std::string& service,
                                const std::string& signed_headers) {
  return "AWS4-HMAC-SHA256 Credential=AKIAPLACEHOLDER0000000/20260228/" + region + "/" + service +
         "/aws4_request, SignedHeaders=" + signed_headers + ", " + kClientSignature;
}

std::vector<std::string> All(const http::HttpHead& head, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& h : head.headers) {
    if (http::EqualsIgnoreCase(h.name, name)) out.push_back(h.value);
  }
  return out;
}

TEST(ParseSigV4AuthorizationTest, ReadsScopeAndSignedHeaders) {
  auto a = ParseSigV4Authorization(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
      "SignedHeaders=Content-Type;host;X-Amz-Date, Signature=5d672d79c15b13162d9279b0855cfba6789a8"
      "edb4c82c400e06b5924a6f2b5d7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->key_id, "AKIDEXAMPLE");
  EXPECT_EQ(a->date, "20150830");
  EXPECT_EQ(a->region, "us-east-1");
  EXPECT_EQ(a->service, "iam");
  EXPECT_EQ(a->signed_headers, (std::vector<std::string>{"content-type", "host", "x-amz-date"}));

  // Spacing and order vary between clients; the signature itself is not needed.
  auto b = ParseSigV4Authorization(
      "  AWS4-HMAC-SHA256 SignedHeaders=host;;x-amz-date,Credential=K/20260301/eu-west-1/s3/"
      "aws4_request  ");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->key_id, "K");
  EXPECT_EQ(b->region, "eu-west-1");
  EXPECT_EQ(b->service, "s3");
  EXPECT_EQ(b->signed_headers, (std::vector<std::string>{"host", "x-amz-date"}));
}

TEST(ParseSigV4AuthorizationTest, RefusesOtherShapes) {
  const std::string headers = ", SignedHeaders=host;x-amz-date, Signature=abc";
  for (const std::string& value : std::vector<std::string>{
           "",
           "AWS4-HMAC-SHA256",
           "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc",                // no Credential
           "AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1/s3/aws4_request",  // no SignedHeaders
           "AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1/s3" + headers,     // short scope
           "AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1/s3/aws4_request/x" + headers,
           "AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1/s3/aws5_request" + headers,
           "AWS4-HMAC-SHA256 Credential=K/2026031/us-east-1/s3/aws4_request" + headers,  // date
           "AWS4-HMAC-SHA256 Credential=/20260301/us-east-1/s3/aws4_request" + headers,  // key id
           "AWS4-HMAC-SHA256 Credential=K/20260301//s3/aws4_request" + headers,          // region
           "AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1//aws4_request" + headers,   // service
           "AWS4-HMAC-SHA256 Credential" + headers,  // a part without '='
           "AWS4-ECDSA-P256-SHA256 Credential=K/20260301/s3/aws4_request" + headers,
           "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",  // SigV2
           "Bearer AWS4-HMAC-SHA256 Credential=K/20260301/us-east-1/s3/aws4_request" + headers,
       }) {
    EXPECT_FALSE(ParseSigV4Authorization(value)) << value;
  }
}

TEST(CanonicalRequestTest, MatchesBotocore) {
  // print(S3SigV4Auth(creds, "s3", "us-west-2").canonical_request(AWSRequest(method="GET",
  //   url="https://examplebucket.s3.us-west-2.amazonaws.com/photos/a%20b.jpg",
  //   headers={"Host": "examplebucket.s3.us-west-2.amazonaws.com",
  //            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", "X-Amz-Date": "20260301T123456Z"},
  //   params={"list-type": "2", "prefix": "photos/2024/", "delimiter": "/",
  //           "start-after": "a*b c"})))
  http::HttpHead s3;
  s3.method = "GET";
  s3.headers = {{"Host", "examplebucket.s3.us-west-2.amazonaws.com"},
                {"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"},
                {"X-Amz-Date", "20260301T123456Z"}};
  EXPECT_EQ(
      CanonicalRequest(s3,
                       "/photos/a%20b.jpg?list-type=2&prefix=photos/2024/&delimiter=%2f"
                       "&start-after=a*b%20c",
                       "s3", {"host", "x-amz-content-sha256", "x-amz-date"}, "UNSIGNED-PAYLOAD"),
      "GET\n/photos/a%20b.jpg\n"
      "delimiter=%2F&list-type=2&prefix=photos%2F2024%2F&start-after=a%2Ab%20c\n"
      "host:examplebucket.s3.us-west-2.amazonaws.com\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"
      "x-amz-date:20260301T123456Z\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD");

  // Other services: the path normalised, then each segment encoded twice.
  // print(SigV4Auth(creds, "execute-api", "us-east-1").canonical_request(AWSRequest(
  //   method="GET",
  //   url="https://abc123.execute-api.us-east-1.amazonaws.com/prod/items/./x/../a%20b",
  //   headers={"Host": "abc123.execute-api.us-east-1.amazonaws.com",
  //            "X-Amz-Date": "20260301T123456Z"})))
  http::HttpHead api;
  api.method = "GET";
  api.headers = {{"Host", "abc123.execute-api.us-east-1.amazonaws.com"},
                 {"X-Amz-Date", "20260301T123456Z"}};
  const std::string empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  EXPECT_EQ(CanonicalRequest(api, "/prod/items/./x/../a%20b", "execute-api", {"host", "x-amz-date"},
                             empty_hash),
            "GET\n/prod/items/a%2520b\n\nhost:abc123.execute-api.us-east-1.amazonaws.com\n"
            "x-amz-date:20260301T123456Z\n\nhost;x-amz-date\n" +
                empty_hash);

  // Only the URI line, for paths botocore canonicalises the same way.
  struct Case {
    const char* target;
    const char* service;
    const char* uri;
  };
  for (const Case& c : std::vector<Case>{
           {"", "sts", "/"},
           {"/", "sts", "/"},
           {"/?Action=X", "sts", "/"},
           {"/prod//x/", "execute-api", "/prod/x/"},
           {"/a/b/../../..", "execute-api", "/"},
           {"/a%2Fb", "execute-api", "/a%252Fb"},
           {"/a%20b/./c", "s3", "/a%20b/./c"},  // S3: as sent
           {"/bucket//key", "s3", "/bucket//key"},
       }) {
    std::string cr = CanonicalRequest(api, c.target, c.service, {}, "h");
    EXPECT_EQ(cr.substr(0, cr.find('\n', 4)), std::string("GET\n") + c.uri) << c.target;
  }
}

TEST(ResignSigV4Test, S3GetWithUnsignedPayloadAndAnEncodedQuery) {
  // sign(S3SigV4Auth, Credentials(KEY_ID, SECRET), "s3", "us-west-2", "GET",
  //      "https://examplebucket.s3.us-west-2.amazonaws.com/photos/a%20b.jpg",
  //      {"Host": "examplebucket.s3.us-west-2.amazonaws.com",
  //       "X-Amz-Expected-Bucket-Owner": "  111122223333 "},
  //      params={"list-type": "2", "prefix": "photos/2024/", "delimiter": "/",
  //              "start-after": "a*b c"},
  //      context={"client_config": Config(s3={"payload_signing_enabled": False})})
  http::HttpHead head;
  head.method = "GET";
  head.target =
      "/photos/a%20b.jpg?list-type=2&prefix=photos/2024/&delimiter=%2f&start-after=a*b%20c";
  head.headers = {
      {"Host", "examplebucket.s3.us-west-2.amazonaws.com"},
      {"User-Agent", "aws-cli/2.15.0"},  // not listed by the client: not signed
      {"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"},
      {"x-amz-date", "20260228T235959Z"},
      {"X-Amz-Expected-Bucket-Owner", "  111122223333 "},
      {"Authorization",
       ClientAuthorization("us-west-2", "s3",
                           "host;x-amz-content-sha256;x-amz-date;x-amz-expected-bucket-owner")},
  };
  ASSERT_EQ(ResignSigV4(&head, head.target, Keys(), Now()), std::nullopt);
  EXPECT_EQ(All(head, "Authorization"),
            std::vector<std::string>{
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/us-west-2/s3/"
                "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                "x-amz-expected-bucket-owner, Signature="
                "e6be206b74863e91a051a2273bf388eef11a98c92c4ea2422e80e55ef122144e"});
  EXPECT_EQ(All(head, "X-Amz-Date"), std::vector<std::string>{"20260301T123456Z"});
  EXPECT_EQ(All(head, "X-Amz-Content-Sha256"), std::vector<std::string>{"UNSIGNED-PAYLOAD"});
  EXPECT_EQ(All(head, "X-Amz-Security-Token"), std::vector<std::string>{});
  EXPECT_EQ(All(head, "User-Agent"), std::vector<std::string>{"aws-cli/2.15.0"});
  EXPECT_EQ(head.headers.size(), 6u);
}

TEST(ResignSigV4Test, StsPostHashesTheFormBody) {
  // sign(SigV4Auth, Credentials(KEY_ID, SECRET), "sts", "us-east-1", "POST",
  //      "https://sts.us-east-1.amazonaws.com/",
  //      {"Host": "sts.us-east-1.amazonaws.com",
  //       "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
  //      data=b"Action=GetCallerIdentity&Version=2011-06-15")
  const std::string body = "Action=GetCallerIdentity&Version=2011-06-15";
  http::HttpHead head;
  head.method = "POST";
  head.target = "/";
  head.framing = http::BodyFraming::kLength;
  head.content_length = body.size();
  head.headers = {
      {"Host", "sts.us-east-1.amazonaws.com"},
      {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"Content-Length", std::to_string(body.size())},
      {"X-Amz-Date", "20260228T235959Z"},
      {"Authorization", ClientAuthorization("us-east-1", "sts", "content-type;host;x-amz-date")},
  };
  ASSERT_EQ(ResignSigV4(&head, head.target, Keys(), Now(), body), std::nullopt);
  EXPECT_EQ(All(head, "Authorization"),
            std::vector<std::string>{
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/us-east-1/sts/"
                "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
                "d9fcd45d9fddf94cced1c4b8daec59a23740b02889f759557d2d6f8fd5130209"});
  EXPECT_EQ(All(head, "X-Amz-Date"), std::vector<std::string>{"20260301T123456Z"});
  EXPECT_EQ(All(head, "X-Amz-Content-Sha256"), std::vector<std::string>{});  // none added

  // The declared hash of the same body signs the same, when the client lists the header too
  // (x-amz-content-sha256 is then signed, so the signature differs from the one above).
  http::HttpHead declared = head;
  declared.headers = {
      {"Host", "sts.us-east-1.amazonaws.com"},
      {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"X-Amz-Content-Sha256", "ab821ae955788b0e33ebd34c208442ccfc2d406e2edc5e7a39bd6458fbb4f843"},
      {"Authorization", ClientAuthorization("us-east-1", "sts", "content-type;host")},
  };
  ASSERT_EQ(ResignSigV4(&declared, "/", Keys(), Now()), std::nullopt);
  EXPECT_NE(declared.Find("Authorization")
                ->find("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "),
            std::string::npos)
      << *declared.Find("Authorization");
}

TEST(ResignSigV4Test, SessionTokenIsSetAndSigned) {
  // sign(SigV4Auth, Credentials(KEY_ID, SECRET, "FQoGZXIvYXdzEXAMPLE/session+token=="), "sts",
  //      "eu-central-1", "GET",
  //      "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
  //      {"Host": "sts.eu-central-1.amazonaws.com"})
  const std::string target = "/?Action=GetCallerIdentity&Version=2011-06-15";
  http::HttpHead head;
  head.method = "GET";
  head.target = target;
  head.headers = {
      {"Host", "sts.eu-central-1.amazonaws.com"},
      {"X-Amz-Date", "20260228T235959Z"},
      {"X-Amz-Security-Token", "placeholder-session-token"},
      {"x-amz-security-token", "a-second-one"},
      {"Authorization",
       ClientAuthorization("eu-central-1", "sts", "host;x-amz-date;x-amz-security-token")},
  };
  http::HttpHead without_token = head;
  ASSERT_EQ(ResignSigV4(&head, target, Keys("FQoGZXIvYXdzEXAMPLE/session+token=="), Now()),
            std::nullopt);
  EXPECT_EQ(All(head, "X-Amz-Security-Token"),
            std::vector<std::string>{"FQoGZXIvYXdzEXAMPLE/session+token=="});
  EXPECT_EQ(All(head, "Authorization"),
            std::vector<std::string>{
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/eu-central-1/sts/"
                "aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
                "1669fb3ae86d2eb520aac4e29d0c7944679ffa6d3374d0c67e2a2daf463510d2"});

  // Keys without a session token: the client's token header is dropped and not signed.
  // sign(SigV4Auth, Credentials(KEY_ID, SECRET), "sts", "eu-central-1", "GET", <same url>,
  //      {"Host": "sts.eu-central-1.amazonaws.com"})
  ASSERT_EQ(ResignSigV4(&without_token, target, Keys(), Now()), std::nullopt);
  EXPECT_EQ(All(without_token, "X-Amz-Security-Token"), std::vector<std::string>{});
  EXPECT_EQ(All(without_token, "Authorization"),
            std::vector<std::string>{
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/eu-central-1/sts/"
                "aws4_request, SignedHeaders=host;x-amz-date, Signature="
                "2e3b2539059056ef0316826f50a1b908ed15c0e287cd83b8f3b7869bd142ff64"});
}

TEST(ResignSigV4Test, NonS3PathIsNormalisedAndEncodedTwice) {
  // sign(SigV4Auth, Credentials(KEY_ID, SECRET), "execute-api", "us-east-1", "GET",
  //      "https://abc123.execute-api.us-east-1.amazonaws.com/prod/items/./x/../a%20b",
  //      {"Host": "abc123.execute-api.us-east-1.amazonaws.com"})
  http::HttpHead head;
  head.method = "GET";
  head.target = "/prod/items/./x/../a%20b";
  head.headers = {
      {"Host", "abc123.execute-api.us-east-1.amazonaws.com"},
      {"Authorization", ClientAuthorization("us-east-1", "execute-api", "host")},
  };
  ASSERT_EQ(ResignSigV4(&head, head.target, Keys(), Now()), std::nullopt);
  EXPECT_EQ(All(head, "Authorization"),
            std::vector<std::string>{
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/us-east-1/"
                "execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature="
                "a508aedde865404b6273443a3b6580975a49372a8511e7241d92521fce49aba0"});
  EXPECT_EQ(All(head, "X-Amz-Date"), std::vector<std::string>{"20260301T123456Z"});
}

TEST(ResignSigV4Test, RefusesWhatCannotBeResigned) {
  struct Case {
    const char* name;
    std::vector<http::Header> headers;
    http::BodyFraming framing;
    uint64_t content_length;
    const char* reason;
  };
  const std::string auth = ClientAuthorization("us-east-1", "s3", "host;x-amz-date");
  std::vector<Case> cases = {
      {"no Authorization",
       {{"Host", "b.s3.amazonaws.com"}},
       http::BodyFraming::kNone,
       0,
       "aws_signature_required"},
      {"SigV2",
       {{"Host", "b.s3.amazonaws.com"}, {"Authorization", "AWS AKIAEXAMPLE:c2lnbmF0dXJl"}},
       http::BodyFraming::kNone,
       0,
       "aws_signature_required"},
      {"bearer",
       {{"Host", "b.s3.amazonaws.com"}, {"Authorization", "Bearer abc"}},
       http::BodyFraming::kNone,
       0,
       "aws_signature_required"},
      {"chunked body, no hash",
       {{"Host", "b.s3.amazonaws.com"}, {"Authorization", auth}},
       http::BodyFraming::kChunked,
       0,
       "aws_payload_hash_required"},
      {"length body, no hash",
       {{"Host", "b.s3.amazonaws.com"}, {"Authorization", auth}},
       http::BodyFraming::kLength,
       10,
       "aws_payload_hash_required"},
  };
  for (const char* streaming :
       {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}) {
    cases.push_back({streaming,
                     {{"Host", "b.s3.amazonaws.com"},
                      {"X-Amz-Content-Sha256", streaming},
                      {"Authorization", auth}},
                     http::BodyFraming::kChunked,
                     0,
                     "aws_streaming_unsupported"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    http::HttpHead head;
    head.method = "PUT";
    head.target = "/key";
    head.headers = c.headers;
    head.framing = c.framing;
    head.content_length = c.content_length;
    auto refusal = ResignSigV4(&head, head.target, Keys("session"), Now());
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->reason, c.reason);
    EXPECT_FALSE(refusal->message.empty());
    if (refusal->reason == "aws_streaming_unsupported") {
      EXPECT_NE(refusal->message.find(c.name), std::string::npos) << refusal->message;
    }
    ASSERT_EQ(head.headers.size(), c.headers.size());  // left as it was
    for (size_t i = 0; i < c.headers.size(); ++i) {
      EXPECT_EQ(head.headers[i].name, c.headers[i].name);
      EXPECT_EQ(head.headers[i].value, c.headers[i].value);
    }
  }
}

TEST(ResignSigV4Test, ABodylessRequestSignsTheEmptyHash) {
  // No body, no hash: the empty payload's hash; also a Content-Length: 0 body; and the body
  // passed in wins over the framing. SigV4Auth (not S3SigV4Auth, which would add
  // x-amz-content-sha256) hashes the empty body:
  // sign(SigV4Auth, Credentials(KEY_ID, SECRET), "s3", "us-east-1", "DELETE",
  //      "https://b.s3.amazonaws.com/b/k", {"Host": "b.s3.amazonaws.com"})
  struct Case {
    http::BodyFraming framing;
    uint64_t content_length;
    std::optional<std::string> body;
  };
  const std::string want =
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260301/us-east-1/s3/aws4_request, "
      "SignedHeaders=host;x-amz-date, "
      "Signature=4452ae6075fffc908a8335d66cfe2eb1c6c31dd9af9223d53cad9f0c893e2d6b";
  for (const Case& c : std::vector<Case>{{http::BodyFraming::kNone, 0, std::nullopt},
                                         {http::BodyFraming::kLength, 0, std::nullopt},
                                         {http::BodyFraming::kChunked, 0, std::string()}}) {
    http::HttpHead head;
    head.method = "DELETE";
    head.target = "/b/k";
    head.framing = c.framing;
    head.content_length = c.content_length;
    head.headers = {{"Host", "b.s3.amazonaws.com"},
                    {"Authorization", ClientAuthorization("us-east-1", "s3", "host")}};
    ASSERT_EQ(ResignSigV4(&head, head.target, Keys(), Now(), c.body), std::nullopt);
    EXPECT_EQ(All(head, "Authorization"), std::vector<std::string>{want});
  }
}

}  // namespace
}  // namespace airlock::credentials
