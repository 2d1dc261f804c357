// IpAddress and Cidr: strict parsing, masking, containment and overlap.
#include "gateway/net/ip_address.h"

#include <gtest/gtest.h>

namespace airlock::net {
namespace {

TEST(IpAddress, ParsesOnlyStrictForms) {
  EXPECT_EQ(IpAddress::Parse("10.1.2.3")->ToString(), "10.1.2.3");
  EXPECT_EQ(IpAddress::Parse("2001:DB8::1")->ToString(), "2001:db8::1");
  EXPECT_FALSE(IpAddress::Parse("127.1"));
  EXPECT_FALSE(IpAddress::Parse("0x7f000001"));
  EXPECT_FALSE(IpAddress::Parse("[::1]"));
  EXPECT_FALSE(IpAddress::Parse("::1%eth0"));
  EXPECT_FALSE(IpAddress::Parse(""));
  EXPECT_FALSE(IpAddress::Parse(std::string(100, '1')));
}

TEST(Cidr, ParsesAndContains) {
  std::string error;
  auto c = Cidr::Parse("10.20.0.0/16", &error);
  ASSERT_TRUE(c) << error;
  EXPECT_TRUE(c->Contains(*IpAddress::Parse("10.20.0.0")));
  EXPECT_TRUE(c->Contains(*IpAddress::Parse("10.20.255.255")));
  EXPECT_FALSE(c->Contains(*IpAddress::Parse("10.21.0.0")));
  EXPECT_FALSE(c->Contains(*IpAddress::Parse("10.19.255.255")));
  EXPECT_FALSE(c->Contains(*IpAddress::Parse("::ffff:10.20.0.1")));  // other family

  auto host = Cidr::Parse("fd00:ec2::254", &error);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix_len(), 128);
  auto odd = Cidr::Parse("10.0.0.0/9", &error);
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->Contains(*IpAddress::Parse("10.127.255.255")));
  EXPECT_FALSE(odd->Contains(*IpAddress::Parse("10.128.0.0")));
}

TEST(Cidr, RejectsMalformed) {
  std::string error;
  EXPECT_FALSE(Cidr::Parse("10.0.0.1/8", &error));
  EXPECT_NE(error.find("did you mean 10.0.0.0/8"), std::string::npos) << error;
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/08", "fd00::/129",
                          "10.0.0/8", "example.com/8", "10.0.0.0/8/8"}) {
    EXPECT_FALSE(Cidr::Parse(bad, &error)) << bad;
  }
}

TEST(Cidr, Overlaps) {
  std::string e;
  auto a = *Cidr::Parse("10.0.0.0/8", &e);
  EXPECT_TRUE(a.Overlaps(*Cidr::Parse("10.1.0.0/16", &e)));
  EXPECT_TRUE(Cidr::Parse("10.1.0.0/16", &e)->Overlaps(a));
  EXPECT_FALSE(a.Overlaps(*Cidr::Parse("11.0.0.0/8", &e)));
  EXPECT_TRUE(Cidr::Parse("0.0.0.0/0", &e)->Overlaps(*Cidr::Parse("169.254.169.254/32", &e)));
  EXPECT_FALSE(Cidr::Parse("::/0", &e)->Overlaps(a));
}

}  // namespace
}  // namespace airlock::net
