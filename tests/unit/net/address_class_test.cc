// ClassifyAddress(): boundary addresses on both sides of every range, and every IPv6 form that
// embeds an IPv4 address.
#include "gateway/net/address_class.h"

#include <gtest/gtest.h>

#include <ostream>

namespace airlock::net {
namespace {

struct Case {
  const char* address;
  AddressClass expected;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.address; }

class ClassifyTest : public testing::TestWithParam<Case> {};

std::string CaseName(const testing::TestParamInfo<Case>& param_info) {
  std::string n;
  for (const char* p = param_info.param.address; *p; ++p) {
    n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  }
  return n;
}

TEST_P(ClassifyTest, Classifies) {
  auto addr = IpAddress::Parse(GetParam().address);
  ASSERT_TRUE(addr) << GetParam().address;
  EXPECT_EQ(AddressClassName(ClassifyAddress(*addr).cls), AddressClassName(GetParam().expected))
      << GetParam().address;
}

using C = AddressClass;
const Case kV4Cases[] = {
    {"0.0.0.0", C::kUnspecified},
    {"0.255.255.255", C::kUnspecified},
    {"1.0.0.0", C::kPublic},
    {"9.255.255.255", C::kPublic},
    {"10.0.0.0", C::kPrivate},
    {"10.255.255.255", C::kPrivate},
    {"11.0.0.0", C::kPublic},
    {"100.63.255.255", C::kPublic},
    {"100.64.0.0", C::kCgnat},
    {"100.127.255.255", C::kCgnat},
    {"100.128.0.0", C::kPublic},
    {"100.100.100.199", C::kCgnat},
    {"100.100.100.200", C::kMetadata},
    {"100.100.100.201", C::kCgnat},
    {"126.255.255.255", C::kPublic},
    {"127.0.0.0", C::kLoopback},
    {"127.255.255.255", C::kLoopback},
    {"128.0.0.0", C::kPublic},
    {"169.253.255.255", C::kPublic},
    {"169.254.0.0", C::kLinkLocal},
    {"169.254.169.253", C::kLinkLocal},
    {"169.254.169.254", C::kMetadata},
    {"169.254.169.255", C::kLinkLocal},
    {"169.254.255.255", C::kLinkLocal},
    {"169.255.0.0", C::kPublic},
    {"172.15.255.255", C::kPublic},
    {"172.16.0.0", C::kPrivate},
    {"172.31.255.255", C::kPrivate},
    {"172.32.0.0", C::kPublic},
    {"191.255.255.255", C::kPublic},
    {"192.0.0.0", C::kIetfProtocol},
    {"192.0.0.191", C::kIetfProtocol},
    {"192.0.0.192", C::kMetadata},
    {"192.0.0.255", C::kIetfProtocol},
    {"192.0.1.0", C::kPublic},
    {"192.0.2.0", C::kReserved},
    {"192.0.2.255", C::kReserved},
    {"192.0.3.0", C::kPublic},
    {"192.88.98.255", C::kPublic},
    {"192.88.99.0", C::kReserved},
    {"192.88.99.255", C::kReserved},
    {"192.88.100.0", C::kPublic},
    {"192.167.255.255", C::kPublic},
    {"192.168.0.0", C::kPrivate},
    {"192.168.255.255", C::kPrivate},
    {"192.169.0.0", C::kPublic},
    {"198.17.255.255", C::kPublic},
    {"198.18.0.0", C::kReserved},
    {"198.19.255.255", C::kReserved},
    {"198.20.0.0", C::kPublic},
    {"198.51.99.255", C::kPublic},
    {"198.51.100.0", C::kReserved},
    {"198.51.100.255", C::kReserved},
    {"198.51.101.0", C::kPublic},
    {"203.0.112.255", C::kPublic},
    {"203.0.113.0", C::kReserved},
    {"203.0.113.255", C::kReserved},
    {"203.0.114.0", C::kPublic},
    {"223.255.255.255", C::kPublic},
    {"224.0.0.0", C::kMulticast},
    {"239.255.255.255", C::kMulticast},
    {"240.0.0.0", C::kReserved},
    {"255.255.255.254", C::kReserved},
    {"255.255.255.255", C::kBroadcast},
};
INSTANTIATE_TEST_SUITE_P(V4, ClassifyTest, testing::ValuesIn(kV4Cases), CaseName);

const Case kV6Cases[] = {
    {"::", C::kUnspecified},
    {"::1", C::kLoopback},
    {"::2", C::kUnspecified},  // IPv4-compatible 0.0.0.2
    // IPv4-mapped.
    {"::ffff:169.254.169.254", C::kMetadata},
    {"::ffff:a9fe:a9fe", C::kMetadata},
    {"::ffff:127.0.0.1", C::kLoopback},
    {"::ffff:10.1.2.3", C::kPrivate},
    {"::ffff:8.8.8.8", C::kPublic},
    {"::ffff:0:0", C::kUnspecified},
    // IPv4-translated (SIIT) and IPv4-compatible.
    {"::ffff:0:a9fe:a9fe", C::kMetadata},
    {"::ffff:0:7f00:1", C::kLoopback},
    {"::a9fe:a9fe", C::kMetadata},
    {"::7f00:1", C::kLoopback},
    {"::808:808", C::kPublic},
    // NAT64 well-known prefix, and the local-use /48 (both embedding positions checked).
    {"64:ff9b::a9fe:a9fe", C::kMetadata},
    {"64:ff9b::7f00:1", C::kLoopback},
    {"64:ff9b::a00:1", C::kPrivate},
    {"64:ff9b::808:808", C::kPublic},
    {"64:ff9b:1::a9fe:a9fe", C::kMetadata},
    {"64:ff9b:1:a9fe:a9:fe00::", C::kMetadata},
    {"64:ff9b:1:808:8:800:808:808", C::kPublic},
    // 6to4.
    {"2002:a9fe:a9fe::", C::kMetadata},
    {"2002:7f00:1::1", C::kLoopback},
    {"2002:808:808::1", C::kPublic},
    // Teredo: server in bytes 4-7, client inverted in bytes 12-15.
    {"2001:0:808:808::5601:5601", C::kMetadata},
    {"2001:0:a9fe:a9fe::f7f7:f7f7", C::kMetadata},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", C::kReserved},  // client 192.0.2.45
    {"2001:0:808:808::f7f7:f7f7", C::kPublic},
    // Special ranges.
    {"fd00:ec2::254", C::kMetadata},
    {"fd00:ec2::253", C::kUniqueLocal},
    {"fc00::", C::kUniqueLocal},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kUniqueLocal},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"fe80::", C::kLinkLocal},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kLinkLocal},
    {"fec0::", C::kSiteLocal},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kSiteLocal},
    {"ff00::", C::kMulticast},
    {"ff02::1", C::kMulticast},
    {"100::1", C::kReserved},
    {"100:0:0:1::", C::kReserved},  // outside 100::/64 but outside 2000::/3 too
    {"2001:db8::1", C::kReserved},
    {"2001:2::1", C::kReserved},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kReserved},
    {"2000::", C::kPublic},
    {"2606:4700::1111", C::kPublic},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::kPublic},
    {"4000::", C::kReserved},
};
INSTANTIATE_TEST_SUITE_P(V6, ClassifyTest, testing::ValuesIn(kV6Cases), CaseName);

TEST(ClassifyAddress, ReportsTheEmbeddedAddress) {
  auto c = ClassifyAddress(*IpAddress::Parse("64:ff9b::a9fe:a9fe"));
  EXPECT_EQ(c.effective.ToString(), "169.254.169.254");
  auto plain = ClassifyAddress(*IpAddress::Parse("2606:4700::1111"));
  EXPECT_EQ(plain.effective.ToString(), "2606:4700::1111");
}

TEST(ClassifyAddress, NeverAllowedClasses) {
  EXPECT_TRUE(IsNeverAllowed(C::kMetadata));
  EXPECT_TRUE(IsNeverAllowed(C::kLinkLocal));
  EXPECT_TRUE(IsNeverAllowed(C::kUnspecified));
  EXPECT_TRUE(IsNeverAllowed(C::kMulticast));
  EXPECT_TRUE(IsNeverAllowed(C::kBroadcast));
  EXPECT_FALSE(IsNeverAllowed(C::kLoopback));
  EXPECT_FALSE(IsNeverAllowed(C::kPrivate));
  for (const auto& range : NeverAllowedRanges()) {
    EXPECT_TRUE(IsNeverAllowed(ClassifyAddress(range.base()).cls)) << range.ToString();
  }
}

}  // namespace
}  // namespace airlock::net
