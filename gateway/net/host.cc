// Host normalisation and lenient IPv4 decoding.
#include "gateway/net/host.h"

#include <cstdint>
#include <vector>

#include "gateway/base/hex.h"

namespace airlock::net {
namespace {

constexpr size_t kMaxName = 253;
constexpr size_t kMaxLabel = 63;

// One inet_aton() part; nullopt on a bad digit, an empty part, or a value over 2^32.
std::optional<uint64_t> ParsePart(std::string_view part) {
  if (part.empty()) return std::nullopt;
  int base = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    base = 16;
    part.remove_prefix(2);
  } else if (part.size() >= 2 && part[0] == '0') {
    base = 8;
    part.remove_prefix(1);
  }
  uint64_t value = 0;
  for (char c : part) {
    int digit;
    if (base == 16) {
      digit = HexDigitValue(c);
      if (digit < 0) return std::nullopt;
    } else {
      if (c < '0' || c >= '0' + base) return std::nullopt;
      digit = c - '0';
    }
    value = value * base + digit;
    if (value > 0xffffffffULL) return std::nullopt;
  }
  return value;
}

// True when a label would be read as a number by URL parsers and inet_aton(): all decimal
// digits, or 0x followed by hex digits.
bool LooksNumeric(std::string_view label) {
  if (label.empty()) return false;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    for (char c : label.substr(2)) {
      if (HexDigitValue(c) < 0) return false;
    }
    return true;
  }
  for (char c : label) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::optional<IpAddress> ParseLenientIpv4(std::string_view text) {
  std::vector<uint64_t> parts;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    auto value = ParsePart(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (!value || parts.size() == 4) return std::nullopt;
    parts.push_back(*value);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  uint32_t addr = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] > 255) return std::nullopt;
    addr |= static_cast<uint32_t>(parts[i]) << (24 - 8 * i);
  }
  uint64_t last = parts.back();
  uint64_t last_limit = 1ULL << (8 * (5 - parts.size()));
  if (last >= last_limit) return std::nullopt;
  addr |= static_cast<uint32_t>(last);
  return IpAddress::V4(addr);
}

NormalizedHost NormalizeHost(std::string_view raw) {
  NormalizedHost out;
  if (raw.empty()) {
    out.error = HostError::kEmpty;
    return out;
  }
  for (char c : raw) {
    if (c == '\0') {
      out.error = HostError::kNul;
      return out;
    }
  }
  for (char c : raw) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      out.error = HostError::kNonAscii;
      return out;
    }
  }
  // Bracketed IPv6 literal (zone identifiers are rejected: they name a local interface).
  if (raw.front() == '[' || raw.find(':') != std::string_view::npos) {
    std::string_view inner = raw;
    if (raw.front() == '[') {
      if (raw.back() != ']') {
        out.error = HostError::kAmbiguousAddress;
        return out;
      }
      inner = raw.substr(1, raw.size() - 2);
    }
    auto addr = IpAddress::Parse(inner);
    if (!addr || addr->is_v4()) {
      // "[...]" claims to be an IPv6 literal; a bare colon is just a bad character ("host:443").
      out.error = raw.front() == '[' ? HostError::kAmbiguousAddress : HostError::kInvalidChar;
      return out;
    }
    out.address = addr;
    out.name = addr->ToString();
    return out;
  }
  std::string name(raw);
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (name.back() == '.') name.pop_back();
  if (name.size() > kMaxName) {
    out.error = HostError::kNameTooLong;
    return out;
  }
  size_t label_start = 0;
  std::string_view last_label;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      size_t len = i - label_start;
      if (len == 0) {
        out.error = HostError::kEmptyLabel;
        return out;
      }
      if (len > kMaxLabel) {
        out.error = HostError::kLabelTooLong;
        return out;
      }
      last_label = std::string_view(name).substr(label_start, len);
      label_start = i + 1;
    } else if (!IsNameChar(name[i])) {
      out.error = HostError::kInvalidChar;
      return out;
    }
  }
  if (LooksNumeric(last_label)) {
    auto addr = ParseLenientIpv4(name);
    if (!addr) {
      out.error = HostError::kAmbiguousAddress;
      return out;
    }
    out.address = addr;
    out.name = addr->ToString();
    return out;
  }
  out.name = std::move(name);
  return out;
}

std::string_view HostErrorName(HostError error) {
  switch (error) {
    case HostError::kNone:
      return "none";
    case HostError::kEmpty:
      return "empty host";
    case HostError::kNul:
      return "host contains a NUL byte";
    case HostError::kNonAscii:
      return "host is not ASCII; use the punycode (xn--) form";
    case HostError::kInvalidChar:
      return "host contains a character outside letters, digits, '-', '_' and '.'";
    case HostError::kEmptyLabel:
      return "host has an empty label";
    case HostError::kLabelTooLong:
      return "host has a label longer than 63 octets";
    case HostError::kNameTooLong:
      return "host is longer than 253 octets";
    case HostError::kAmbiguousAddress:
      return "host looks like an IP address but is not a valid one";
  }
  return "invalid host";
}

}  // namespace airlock::net
