// Address classification tables (IANA IPv4/IPv6 special-purpose registries, RFC 6052 NAT64,
// RFC 3056 6to4, RFC 4380 Teredo, cloud metadata endpoints).
#include "gateway/net/address_class.h"

#include <array>
#include <vector>

namespace airlock::net {
namespace {

struct Range {
  Cidr cidr;
  AddressClass cls;
};

Cidr MakeCidr(std::string_view text) {
  std::string error;
  auto c = Cidr::Parse(text, &error);
  if (!c) __builtin_trap();  // the tables below are constants; a bad entry is a programming error
  return *c;
}

// First match wins, so narrower ranges come before the ranges that contain them.
const std::vector<Range>& V4Table() {
  static const std::vector<Range> table = {
      {MakeCidr("169.254.169.254/32"), AddressClass::kMetadata},  // AWS, GCP, Azure, OCI, ...
      {MakeCidr("100.100.100.200/32"), AddressClass::kMetadata},  // Alibaba Cloud
      {MakeCidr("192.0.0.192/32"), AddressClass::kMetadata},      // Oracle Cloud Classic
      {MakeCidr("0.0.0.0/8"), AddressClass::kUnspecified},
      {MakeCidr("10.0.0.0/8"), AddressClass::kPrivate},
      {MakeCidr("100.64.0.0/10"), AddressClass::kCgnat},
      {MakeCidr("127.0.0.0/8"), AddressClass::kLoopback},
      {MakeCidr("169.254.0.0/16"), AddressClass::kLinkLocal},
      {MakeCidr("172.16.0.0/12"), AddressClass::kPrivate},
      {MakeCidr("192.0.0.0/24"), AddressClass::kIetfProtocol},
      {MakeCidr("192.0.2.0/24"), AddressClass::kReserved},    // TEST-NET-1
      {MakeCidr("192.88.99.0/24"), AddressClass::kReserved},  // 6to4 relay anycast
      {MakeCidr("192.168.0.0/16"), AddressClass::kPrivate},
      {MakeCidr("198.18.0.0/15"), AddressClass::kReserved},    // benchmarking
      {MakeCidr("198.51.100.0/24"), AddressClass::kReserved},  // TEST-NET-2
      {MakeCidr("203.0.113.0/24"), AddressClass::kReserved},   // TEST-NET-3
      {MakeCidr("224.0.0.0/4"), AddressClass::kMulticast},
      {MakeCidr("255.255.255.255/32"), AddressClass::kBroadcast},
      {MakeCidr("240.0.0.0/4"), AddressClass::kReserved},
  };
  return table;
}

const std::vector<Range>& V6Table() {
  static const std::vector<Range> table = {
      {MakeCidr("fd00:ec2::254/128"), AddressClass::kMetadata},  // AWS IPv6 IMDS
      {MakeCidr("::/128"), AddressClass::kUnspecified},
      {MakeCidr("::1/128"), AddressClass::kLoopback},
      {MakeCidr("100::/64"), AddressClass::kReserved},       // discard-only
      {MakeCidr("2001:2::/48"), AddressClass::kReserved},    // benchmarking
      {MakeCidr("2001:db8::/32"), AddressClass::kReserved},  // documentation
      {MakeCidr("fc00::/7"), AddressClass::kUniqueLocal},
      {MakeCidr("fe80::/10"), AddressClass::kLinkLocal},
      {MakeCidr("fec0::/10"), AddressClass::kSiteLocal},
      {MakeCidr("ff00::/8"), AddressClass::kMulticast},
  };
  return table;
}

AddressClass Lookup(const std::vector<Range>& table, const IpAddress& addr, AddressClass fallback) {
  for (const auto& r : table) {
    if (r.cidr.Contains(addr)) return r.cls;
  }
  return fallback;
}

IpAddress V4FromBytes(const std::array<uint8_t, 16>& b, int i0, int i1, int i2, int i3,
                      uint8_t x = 0) {
  return IpAddress::V4((uint32_t{static_cast<uint8_t>(b[i0] ^ x)} << 24) |
                       (uint32_t{static_cast<uint8_t>(b[i1] ^ x)} << 16) |
                       (uint32_t{static_cast<uint8_t>(b[i2] ^ x)} << 8) |
                       uint32_t{static_cast<uint8_t>(b[i3] ^ x)});
}

AddressClassification ClassifyV4(const IpAddress& addr) {
  return {Lookup(V4Table(), addr, AddressClass::kPublic), addr};
}

AddressClassification Stricter(const AddressClassification& a, const AddressClassification& b) {
  return b.cls > a.cls ? b : a;
}

// IPv6 forms that carry an IPv4 address; each returns the embedded candidates.
struct EmbeddingForm {
  Cidr prefix;
  std::vector<std::array<int, 4>> positions;  // byte offsets of each embedded IPv4 candidate
};

const std::vector<EmbeddingForm>& EmbeddingForms() {
  static const std::vector<EmbeddingForm> forms = {
      {MakeCidr("::ffff:0:0/96"), {{12, 13, 14, 15}}},                  // IPv4-mapped
      {MakeCidr("::ffff:0:0:0/96"), {{12, 13, 14, 15}}},                // IPv4-translated (SIIT)
      {MakeCidr("::/96"), {{12, 13, 14, 15}}},                          // IPv4-compatible
      {MakeCidr("64:ff9b::/96"), {{12, 13, 14, 15}}},                   // NAT64 well-known
      {MakeCidr("64:ff9b:1::/48"), {{6, 7, 9, 10}, {12, 13, 14, 15}}},  // local-use NAT64
      {MakeCidr("2002::/16"), {{2, 3, 4, 5}}},                          // 6to4
  };
  return forms;
}

}  // namespace

AddressClassification ClassifyAddress(const IpAddress& addr) {
  if (addr.is_v4()) return ClassifyV4(addr);
  const auto& b = addr.bytes();
  // Exact special addresses first (:: and ::1 sit inside the IPv4-compatible range).
  AddressClass direct = Lookup(V6Table(), addr, AddressClass::kPublic);
  if (direct == AddressClass::kUnspecified || direct == AddressClass::kLoopback ||
      direct == AddressClass::kMetadata) {
    return {direct, addr};
  }
  for (const auto& form : EmbeddingForms()) {
    if (!form.prefix.Contains(addr)) continue;
    AddressClassification worst{AddressClass::kPublic, addr};
    bool first = true;
    for (const auto& p : form.positions) {
      auto c = ClassifyV4(V4FromBytes(b, p[0], p[1], p[2], p[3]));
      worst = first ? c : Stricter(worst, c);
      first = false;
    }
    return worst;
  }
  static const Cidr kTeredo = MakeCidr("2001::/32");
  if (kTeredo.Contains(addr)) {
    // RFC 4380: server address in bytes 4-7, client address inverted in bytes 12-15.
    return Stricter(ClassifyV4(V4FromBytes(b, 4, 5, 6, 7)),
                    ClassifyV4(V4FromBytes(b, 12, 13, 14, 15, 0xff)));
  }
  if (direct != AddressClass::kPublic) return {direct, addr};
  static const Cidr kGlobalUnicast = MakeCidr("2000::/3");
  if (!kGlobalUnicast.Contains(addr)) return {AddressClass::kReserved, addr};
  return {AddressClass::kPublic, addr};
}

bool IsNeverAllowed(AddressClass cls) {
  switch (cls) {
    case AddressClass::kMetadata:
    case AddressClass::kLinkLocal:
    case AddressClass::kUnspecified:
    case AddressClass::kMulticast:
    case AddressClass::kBroadcast:
      return true;
    default:
      return false;
  }
}

const std::vector<Cidr>& NeverAllowedRanges() {
  static const std::vector<Cidr> ranges = [] {
    std::vector<Cidr> out;
    for (const auto* table : {&V4Table(), &V6Table()}) {
      for (const auto& r : *table) {
        // Metadata host addresses are left out: 169.254.169.254 lies in link-local, and the
        // others sit inside ranges a policy may list (they stay denied by class).
        if (IsNeverAllowed(r.cls) && r.cls != AddressClass::kMetadata) out.push_back(r.cidr);
      }
    }
    return out;
  }();
  return ranges;
}

std::string_view AddressClassName(AddressClass cls) {
  switch (cls) {
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kCgnat:
      return "cgnat";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kIetfProtocol:
      return "ietf_protocol";
    case AddressClass::kReserved:
      return "reserved";
    case AddressClass::kUniqueLocal:
      return "unique_local";
    case AddressClass::kSiteLocal:
      return "site_local";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kLinkLocal:
      return "link_local";
    case AddressClass::kMetadata:
      return "metadata";
  }
  return "unknown";
}

}  // namespace airlock::net
