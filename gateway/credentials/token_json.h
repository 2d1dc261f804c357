// Reading what token issuers print or answer: expiry times as RFC 3339 text
// ("2026-12-02T10:00:00Z", fractional seconds and offsets accepted; past 2200, no expiry) or Unix
// seconds, and helper
// output in the exec and AWS credential_process shapes. Never throws; errors never quote a token.
// Pure; no threads.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string_view>

#include "gateway/base/status.h"
#include "gateway/credentials/credential_source.h"

namespace airlock::credentials {

// An RFC 3339 date-time, or nullopt.
std::optional<TimePoint> ParseRfc3339(std::string_view text);
// `value` as an expiry: RFC 3339 text or Unix seconds (a number).
std::optional<TimePoint> ParseExpiry(const nlohmann::json& value);

// {"token": "...", "expires_at": ...}; expires_at may be absent (the token does not expire).
Result<Token> ParseExecOutput(std::string_view output);
// {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}: what AWS's
// credential_process helpers print, and the shape of an aws_sigv4 keys file.
Result<Token> ParseAwsKeys(std::string_view output);

}  // namespace airlock::credentials
