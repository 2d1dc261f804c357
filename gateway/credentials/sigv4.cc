// SigV4 re-signing (see sigv4.h). The canonical request follows AWS's specification: the URI
// path as sent for S3 and normalised and encoded again for other services, the query decoded,
// encoded and sorted, the signed headers lower-cased, trimmed and sorted.
#include "gateway/credentials/sigv4.h"

#include <algorithm>
#include <ctime>

#include "gateway/base/percent_encoding.h"
#include "gateway/crypto/digest.h"

namespace airlock::credentials {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::string CanonicalUri(std::string_view path, std::string_view service) {
  if (path.empty()) return "/";
  // S3: as sent. Others: dot segments removed, then the path as sent encoded once more (what the
  // AWS SDKs sign: a properly escaped path ends up encoded twice).
  if (service == "s3") return std::string(path);
  std::vector<std::string> segments;
  auto parts = Split(path.substr(1), '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    if (p == ".") continue;
    if (p == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    if (p.empty() && i + 1 != parts.size()) continue;  // collapse "//"
    segments.emplace_back(p);  // as sent: its escapes are encoded again below
  }
  std::string out;
  for (const auto& s : segments) out += "/" + PercentEncode(s);
  return out.empty() ? "/" : out;
}

std::string CanonicalQuery(std::string_view query) {
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> params;
  for (auto p : Split(query, '&')) {
    if (p.empty()) continue;
    size_t eq = p.find('=');
    params.emplace_back(
        PercentEncode(PercentDecode(p.substr(0, eq))),
        eq == std::string_view::npos ? "" : PercentEncode(PercentDecode(p.substr(eq + 1))));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

// A header's value as SigV4 wants it: every instance, trimmed, inner runs of spaces collapsed,
// joined with ','.
std::string HeaderValue(const http::HttpHead& head, std::string_view name) {
  std::string out;
  bool first = true;
  for (const auto& h : head.headers) {
    if (!http::EqualsIgnoreCase(h.name, name)) continue;
    std::string v;
    for (char c : Trim(h.value)) {
      if (c == ' ' && !v.empty() && v.back() == ' ') continue;
      v.push_back(c);
    }
    out += (first ? "" : ",") + v;
    first = false;
  }
  return out;
}

void SetHeader(http::HttpHead* head, std::string_view name, std::string value) {
  std::erase_if(head->headers,
                [&](const http::Header& h) { return http::EqualsIgnoreCase(h.name, name); });
  head->headers.push_back({std::string(name), std::move(value)});
}

std::string Format(TimePoint t, const char* fmt) {
  time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), fmt, &tm);
  return buf;
}

}  // namespace

std::optional<SigV4Authorization> ParseSigV4Authorization(std::string_view value) {
  value = Trim(value);
  if (value.substr(0, kAlgorithm.size()) != kAlgorithm) return std::nullopt;
  value.remove_prefix(kAlgorithm.size());
  SigV4Authorization a;
  bool have_credential = false, have_headers = false;
  for (auto part : Split(value, ',')) {
    part = Trim(part);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = part.substr(0, eq), v = part.substr(eq + 1);
    if (key == "Credential") {
      auto scope = Split(v, '/');
      if (scope.size() != 5 || scope[4] != "aws4_request" || scope[0].empty() ||
          scope[1].size() != 8 || scope[2].empty() || scope[3].empty()) {
        return std::nullopt;
      }
      a.key_id = scope[0];
      a.date = scope[1];
      a.region = scope[2];
      a.service = scope[3];
      have_credential = true;
    } else if (key == "SignedHeaders") {
      for (auto h : Split(v, ';')) {
        if (!h.empty()) a.signed_headers.push_back(Lower(h));
      }
      have_headers = true;
    }
  }
  if (!have_credential || !have_headers) return std::nullopt;
  return a;
}

std::string CanonicalRequest(const http::HttpHead& head, std::string_view origin_target,
                             std::string_view service,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash) {
  size_t q = origin_target.find('?');
  std::string out = head.method + "\n" + CanonicalUri(origin_target.substr(0, q), service) + "\n" +
                    CanonicalQuery(q == std::string_view::npos ? "" : origin_target.substr(q + 1)) +
                    "\n";
  std::string names;
  for (const auto& name : signed_headers) {
    out += name + ":" + HeaderValue(head, name) + "\n";
    names += (names.empty() ? "" : ";") + name;
  }
  return out + "\n" + names + "\n" + std::string(payload_hash);
}

std::optional<SigV4Refusal> ResignSigV4(http::HttpHead* head, std::string_view origin_target,
                                        const Token& keys, TimePoint now,
                                        std::optional<std::string_view> body) {
  const std::string* authorization = head->Find("Authorization");
  auto client = authorization ? ParseSigV4Authorization(*authorization) : std::nullopt;
  if (!client) {
    return SigV4Refusal{"aws_signature_required",
                        "sign the request with SigV4 (AWS4-HMAC-SHA256, in the Authorization "
                        "header) using the placeholder keys in AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY; the gateway signs it again with the real keys"};
  }
  std::string payload_hash;
  if (const std::string* declared = head->Find("X-Amz-Content-Sha256")) {
    payload_hash = *declared;
    if (payload_hash.rfind("STREAMING-", 0) == 0) {
      return SigV4Refusal{"aws_streaming_unsupported",
                          "a streaming payload signature (" + payload_hash +
                              ") signs every chunk with the client's key and cannot be "
                              "re-signed; send the payload hash or UNSIGNED-PAYLOAD instead"};
    }
  } else if (body) {
    payload_hash = crypto::Sha256Hex(*body);
  } else if (head->framing == http::BodyFraming::kNone ||
             (head->framing == http::BodyFraming::kLength && head->content_length == 0)) {
    payload_hash = crypto::Sha256Hex("");
  } else {
    return SigV4Refusal{"aws_payload_hash_required",
                        "a request with a body needs an X-Amz-Content-Sha256 header (its SHA-256 "
                        "in hex, or UNSIGNED-PAYLOAD) to be re-signed"};
  }
  std::string amz_date = Format(now, "%Y%m%dT%H%M%SZ");
  std::string date = amz_date.substr(0, 8);
  std::erase_if(head->headers, [](const http::Header& h) {
    return http::EqualsIgnoreCase(h.name, "Authorization") ||
           http::EqualsIgnoreCase(h.name, "X-Amz-Security-Token");
  });
  SetHeader(head, "X-Amz-Date", amz_date);
  if (!keys.session_token.empty()) SetHeader(head, "X-Amz-Security-Token", keys.session_token);

  std::vector<std::string> signed_headers;
  for (const auto& h : client->signed_headers) {
    if (h != "authorization" && h != "x-amz-security-token") signed_headers.push_back(h);
  }
  signed_headers.push_back("host");
  signed_headers.push_back("x-amz-date");
  if (head->Find("X-Amz-Content-Sha256")) signed_headers.push_back("x-amz-content-sha256");
  if (!keys.session_token.empty()) signed_headers.push_back("x-amz-security-token");
  std::sort(signed_headers.begin(), signed_headers.end());
  signed_headers.erase(std::unique(signed_headers.begin(), signed_headers.end()),
                       signed_headers.end());

  std::string scope = date + "/" + client->region + "/" + client->service + "/aws4_request";
  std::string string_to_sign =
      std::string(kAlgorithm) + "\n" + amz_date + "\n" + scope + "\n" +
      crypto::Sha256Hex(
          CanonicalRequest(*head, origin_target, client->service, signed_headers, payload_hash));
  std::string key = crypto::HmacSha256("AWS4" + keys.value, date);
  key = crypto::HmacSha256(key, client->region);
  key = crypto::HmacSha256(key, client->service);
  key = crypto::HmacSha256(key, "aws4_request");
  std::string names;
  for (const auto& n : signed_headers) names += (names.empty() ? "" : ";") + n;
  head->headers.push_back(
      {"Authorization", std::string(kAlgorithm) + " Credential=" + keys.key_id + "/" + scope +
                            ", SignedHeaders=" + names +
                            ", Signature=" + crypto::HmacSha256Hex(key, string_to_sign)});
  return std::nullopt;
}

}  // namespace airlock::credentials
