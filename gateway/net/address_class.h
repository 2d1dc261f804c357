// ClassifyAddress(): which kind of destination an IP address is (public, loopback, private,
// metadata, ...). IPv6 forms that embed an IPv4 address (mapped, compatible, translated, NAT64,
// 6to4, Teredo) are classified as the embedded address; where a form embeds two candidates the
// stricter class wins. Pure functions over values; no thread ownership.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "gateway/net/ip_address.h"

namespace airlock::net {

// Ordered from least to most restrictive; Stricter() relies on this order.
enum class AddressClass : uint8_t {
  kPublic,
  kPrivate,       // 10/8, 172.16/12, 192.168/16
  kCgnat,         // 100.64/10 (shared address space)
  kLoopback,      // 127/8, ::1
  kIetfProtocol,  // 192.0.0.0/24
  kReserved,      // documentation, benchmarking, 240/4, IPv6 outside 2000::/3, ...
  kUniqueLocal,   // fc00::/7
  kSiteLocal,     // fec0::/10 (deprecated)
  kUnspecified,   // 0.0.0.0/8, ::
  kBroadcast,     // 255.255.255.255
  kMulticast,     // 224/4, ff00::/8
  kLinkLocal,     // 169.254/16, fe80::/10
  kMetadata,      // cloud instance metadata: 169.254.169.254, fd00:ec2::254, ...
};

struct AddressClassification {
  AddressClass cls = AddressClass::kPublic;
  // The address the class was decided on: the embedded IPv4 address for IPv6 forms that embed
  // one, otherwise the address itself.
  IpAddress effective;
};

AddressClassification ClassifyAddress(const IpAddress& addr);

// Classes that no policy can allow (metadata, link-local, unspecified, multicast, broadcast),
// and the ranges of the non-metadata ones (metadata host addresses are classified one by one).
bool IsNeverAllowed(AddressClass cls);
const std::vector<Cidr>& NeverAllowedRanges();
std::string_view AddressClassName(AddressClass cls);

}  // namespace airlock::net
