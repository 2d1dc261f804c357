// Percent-encoding (RFC 3986 section 2.1): every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~) as %XX with upper-case hex. What OAuth2 form bodies, injected query
// parameters and SigV4 canonical requests need. Pure; no threads.
#pragma once

#include <string>
#include <string_view>

namespace airlock::http {

std::string PercentEncode(std::string_view text);

}  // namespace airlock::http
