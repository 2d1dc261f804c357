// Base64 decoding (RFC 4648, standard alphabet, padding required) for Proxy-Authorization.
// Stateless.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airlock {

std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace airlock
