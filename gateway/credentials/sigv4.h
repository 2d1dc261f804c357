// AWS Signature Version 4, re-signed at the gateway: the sandbox signs with a placeholder key id
// (and a placeholder secret); the gateway keeps what the client signed for (method, target, the
// headers it listed, the payload hash it declared), drops Authorization, X-Amz-Date and
// X-Amz-Security-Token, and signs again with the real keys, now, in the client's region and
// service. Streaming payload signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD and its variants)
// sign every chunk with the client's key and cannot be re-signed: they are refused with a reason.
// Pure (no I/O); no thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/credentials/credential_source.h"
#include "gateway/http/http_head.h"

namespace airlock::credentials {

// The client's `Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=...`.
struct SigV4Authorization {
  std::string key_id;
  std::string date;  // YYYYMMDD
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;  // lower-case
};
std::optional<SigV4Authorization> ParseSigV4Authorization(std::string_view value);

// Why a request cannot be re-signed: a reason code and a message an agent can act on.
struct SigV4Refusal {
  std::string reason;
  std::string message;
};

// Re-signs `head` (sent with `origin_target`) with `keys` at `now`. `body` is the whole request
// body when the client declared no payload hash and the body was read first (nullopt otherwise).
// Returns a refusal when the request cannot be re-signed.
std::optional<SigV4Refusal> ResignSigV4(http::HttpHead* head, std::string_view origin_target,
                                        const Token& keys, TimePoint now,
                                        std::optional<std::string_view> body = std::nullopt);

// The canonical request (exposed for tests).
std::string CanonicalRequest(const http::HttpHead& head, std::string_view origin_target,
                             std::string_view service,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash);

}  // namespace airlock::credentials
