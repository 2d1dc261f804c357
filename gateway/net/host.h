// NormalizeHost(): turns a host as received (Host header, SNI, CONNECT authority, DNS question)
// into either a canonical DNS name (lower case, no trailing dot, A-labels only) or an IP address.
// Numeric hosts in every spelling inet_aton() accepts (decimal, octal, hex, short forms such as
// 127.1) are decoded to the address they denote; a host whose last label is numeric but does not
// decode to an address is rejected rather than treated as a name (the WHATWG URL rule).
// Pure functions; no thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gateway/net/ip_address.h"

namespace airlock::net {

enum class HostError : uint8_t {
  kNone,
  kEmpty,
  kNul,               // a NUL byte anywhere
  kNonAscii,          // U-labels or other bytes >= 0x80: must be punycode
  kInvalidChar,       // outside [A-Za-z0-9-_.] (and not a bracketed IPv6 literal)
  kEmptyLabel,        // "a..b", ".a", or more than one trailing dot
  kLabelTooLong,      // a label over 63 octets
  kNameTooLong,       // over 253 octets
  kAmbiguousAddress,  // looks numeric but is not a valid address (overflow, bad digit, 5 parts)
};

struct NormalizedHost {
  HostError error = HostError::kNone;
  std::string name;                  // canonical name; for an address, its canonical text
  std::optional<IpAddress> address;  // set when the host is an IP literal
};

NormalizedHost NormalizeHost(std::string_view raw);

// Decodes an IPv4 address in any inet_aton() spelling: 1 to 4 parts, each decimal, octal
// (leading 0) or hex (0x); the last part fills the remaining bytes. nullopt on any error.
std::optional<IpAddress> ParseLenientIpv4(std::string_view text);

std::string_view HostErrorName(HostError error);

}  // namespace airlock::net
