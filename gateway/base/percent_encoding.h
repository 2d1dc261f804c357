// Percent-encoding (RFC 3986 section 2.1): every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~) as %XX with upper-case hex, and its decoding. What OAuth2 form bodies,
// injected query parameters, SigV4 canonical requests and the placeholder scan need. Pure; no
// threads.
#pragma once

#include <string>
#include <string_view>

namespace airlock {

std::string PercentEncode(std::string_view text);
// One pass: every %XX with two hex digits decoded; other bytes (a lone '%') as they are.
std::string PercentDecode(std::string_view text);

}  // namespace airlock
