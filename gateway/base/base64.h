// Base64 (RFC 4648, standard alphabet, padding required): decoding for Proxy-Authorization,
// encoding for binary payloads in vmlaunch's guest-agent protocol and (URL-safe) for JWTs.
// Stateless.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock {

std::optional<std::string> Base64Decode(std::string_view in);
std::string Base64Encode(std::string_view in);
// The URL-safe alphabet without padding (RFC 4648 section 5), as JWTs use it.
std::string Base64UrlEncode(std::string_view in);

}  // namespace airlock
