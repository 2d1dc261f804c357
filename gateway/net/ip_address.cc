// Strict address parsing through inet_pton, and prefix arithmetic on byte arrays.
#include "gateway/net/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace airlock::net {
namespace {

// True when the first `bits` bits of a and b are equal.
bool PrefixEqual(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.family_ = Family::kV4;
  a.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress a;
  a.family_ = Family::kV6;
  a.bytes_ = bytes;
  return a;
}

uint32_t IpAddress::v4() const {
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes_.data()) != 1) return std::nullopt;
    a.family_ = Family::kV4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes_.data()) != 1) return std::nullopt;
  a.family_ = Family::kV6;
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

Cidr::Cidr(const IpAddress& base, int prefix_len) : prefix_len_(prefix_len) {
  std::array<uint8_t, 16> masked{};
  const auto& b = base.bytes();
  int full = prefix_len / 8;
  std::copy(b.begin(), b.begin() + full, masked.begin());
  if (prefix_len % 8 != 0) {
    masked[full] = static_cast<uint8_t>(b[full] & (0xff << (8 - prefix_len % 8)));
  }
  if (base.is_v4()) {
    base_ = IpAddress::V4((uint32_t{masked[0]} << 24) | (uint32_t{masked[1]} << 16) |
                          (uint32_t{masked[2]} << 8) | masked[3]);
  } else {
    base_ = IpAddress::V6(masked);
  }
}

std::optional<Cidr> Cidr::Parse(std::string_view text, std::string* error) {
  size_t slash = text.find('/');
  auto addr = IpAddress::Parse(text.substr(0, slash));
  if (!addr) {
    *error = "'" + std::string(text) + "' is not a CIDR (expected e.g. 10.20.0.0/16 or fd00::/8)";
    return std::nullopt;
  }
  int len = addr->bit_length();
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || len < 0 ||
        len > addr->bit_length() || (digits.size() > 1 && digits[0] == '0')) {
      *error = "'" + std::string(text) + "' has an invalid prefix length (0 to " +
               std::to_string(addr->bit_length()) + ")";
      return std::nullopt;
    }
  }
  Cidr cidr(*addr, len);
  if (!(cidr.base() == *addr)) {
    *error = "'" + std::string(text) + "' has host bits set below the prefix; did you mean " +
             cidr.ToString() + "?";
    return std::nullopt;
  }
  return cidr;
}

bool Cidr::Contains(const IpAddress& addr) const {
  return addr.family() == base_.family() && PrefixEqual(addr.bytes(), base_.bytes(), prefix_len_);
}

bool Cidr::Overlaps(const Cidr& other) const {
  if (other.base_.family() != base_.family()) return false;
  return PrefixEqual(base_.bytes(), other.base_.bytes(), std::min(prefix_len_, other.prefix_len_));
}

std::string Cidr::ToString() const { return base_.ToString() + "/" + std::to_string(prefix_len_); }

}  // namespace airlock::net
