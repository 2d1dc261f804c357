// IPv4/IPv6 addresses and CIDR prefixes: strict parsing (the forms inet_pton accepts), printing
// and containment. Values only; no thread ownership.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace airlock::net {

class IpAddress {
 public:
  enum class Family : uint8_t { kV4, kV6 };

  IpAddress() = default;  // 0.0.0.0
  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);

  // Dotted-quad IPv4 or RFC 4291 IPv6 text, nothing else (no brackets, zones or short forms).
  static std::optional<IpAddress> Parse(std::string_view text);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  uint32_t v4() const;  // host byte order; only for IPv4
  // IPv4 as 4 bytes in network order, or the 16 IPv6 bytes.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  int bit_length() const { return is_v4() ? 32 : 128; }

  std::string ToString() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::kV4;
  std::array<uint8_t, 16> bytes_{};
};

// An address prefix such as 10.0.0.0/8 or fd00::/8. The address is masked to the prefix.
class Cidr {
 public:
  Cidr() = default;
  Cidr(const IpAddress& base, int prefix_len);

  // "a.b.c.d/n", "x::y/n", or a bare address (a host prefix). Host bits set below the prefix are
  // rejected ("10.0.0.1/8"), because they usually mean a typo.
  static std::optional<Cidr> Parse(std::string_view text, std::string* error);

  const IpAddress& base() const { return base_; }
  int prefix_len() const { return prefix_len_; }
  bool Contains(const IpAddress& addr) const;
  bool Overlaps(const Cidr& other) const;
  std::string ToString() const;

 private:
  IpAddress base_;
  int prefix_len_ = 0;
};

}  // namespace airlock::net
