// SHA-256 and HMAC-SHA-256 as lower-case hex, for the audit hash chain and SigV4 signing.
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace airlock::crypto {

std::string Sha256Hex(std::string_view data);
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// The raw 32-byte MAC, for key derivation chains (SigV4).
std::string HmacSha256(std::string_view key, std::string_view data);

}  // namespace airlock::crypto
