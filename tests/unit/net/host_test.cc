// NormalizeHost(): every spelling of an address decodes to that address; malformed hosts get
// their own error; names are canonicalised.
#include "gateway/net/host.h"

#include <gtest/gtest.h>

#include <ostream>

#include <string>

namespace airlock::net {
namespace {

struct LiteralCase {
  std::string host;
  const char* address;  // expected canonical address
};
void PrintTo(const LiteralCase& c, std::ostream* os) { *os << c.host; }

class HostLiteralTest : public testing::TestWithParam<LiteralCase> {};

TEST_P(HostLiteralTest, DecodesToTheAddress) {
  NormalizedHost h = NormalizeHost(GetParam().host);
  ASSERT_EQ(h.error, HostError::kNone) << GetParam().host;
  ASSERT_TRUE(h.address) << GetParam().host;
  EXPECT_EQ(h.address->ToString(), GetParam().address) << GetParam().host;
  EXPECT_EQ(h.name, GetParam().address);
}

const LiteralCase kLiterals[] = {
    {"169.254.169.254", "169.254.169.254"},
    {"2852039166", "169.254.169.254"},
    {"0xA9FEA9FE", "169.254.169.254"},
    {"0xa9fea9fe", "169.254.169.254"},
    {"0XA9FEA9FE", "169.254.169.254"},
    {"0251.0376.0251.0376", "169.254.169.254"},
    {"0xA9.0xFE.0xA9.0xFE", "169.254.169.254"},
    {"169.0xfe.0251.254", "169.254.169.254"},
    {"169.254.43518", "169.254.169.254"},
    {"169.16689662", "169.254.169.254"},
    {"025177524776", "169.254.169.254"},
    {"169.254.169.254.", "169.254.169.254"},
    {"127.1", "127.0.0.1"},
    {"127.0.1", "127.0.0.1"},
    {"0177.1", "127.0.0.1"},
    {"0x7f000001", "127.0.0.1"},
    {"017700000001", "127.0.0.1"},
    {"127.000.000.001", "127.0.0.1"},
    {"0", "0.0.0.0"},
    {"0x", "0.0.0.0"},
    {"10.0x0.0.01", "10.0.0.1"},
    {"4294967295", "255.255.255.255"},
    {"[::1]", "::1"},
    {"[::ffff:169.254.169.254]", "::ffff:169.254.169.254"},
    {"[0:0:0:0:0:ffff:a9fe:a9fe]", "::ffff:169.254.169.254"},
    {"[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe"},
    {"[FD00:EC2::254]", "fd00:ec2::254"},
    {"::1", "::1"},
};
INSTANTIATE_TEST_SUITE_P(Literals, HostLiteralTest, testing::ValuesIn(kLiterals));

struct ErrorCase {
  std::string host;
  HostError error;
};
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << testing::PrintToString(c.host); }

class HostErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(HostErrorTest, Rejects) {
  NormalizedHost h = NormalizeHost(GetParam().host);
  EXPECT_EQ(HostErrorName(h.error), HostErrorName(GetParam().error)) << GetParam().host;
  EXPECT_FALSE(h.address);
}

const ErrorCase kErrors[] = {
    {"", HostError::kEmpty},
    {std::string("exa\0mple.com", 11), HostError::kNul},
    {std::string("169.254.169.254\0.example.com", 28), HostError::kNul},
    {"bücher.example", HostError::kNonAscii},
    {"例え.jp", HostError::kNonAscii},
    {"exa mple.com", HostError::kInvalidChar},
    {"exa%2emple.com", HostError::kInvalidChar},
    {"user@example.com", HostError::kInvalidChar},
    {"example.com/", HostError::kInvalidChar},
    {"a..b", HostError::kEmptyLabel},
    {".example.com", HostError::kEmptyLabel},
    {"example.com..", HostError::kEmptyLabel},
    {".", HostError::kEmptyLabel},
    {std::string(64, 'a') + ".com", HostError::kLabelTooLong},
    {std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
         std::string(63, 'd'),
     HostError::kNameTooLong},
    // Numeric-looking hosts that are not valid addresses are not names either.
    {"1.2.3.4.5", HostError::kAmbiguousAddress},
    {"256.0.0.1", HostError::kAmbiguousAddress},
    {"1.2.3.256", HostError::kAmbiguousAddress},
    {"1.2.65536", HostError::kAmbiguousAddress},
    {"1.16777216", HostError::kAmbiguousAddress},
    {"4294967296", HostError::kAmbiguousAddress},
    {"0x100000000", HostError::kAmbiguousAddress},
    {"99999999999999999999999", HostError::kAmbiguousAddress},
    {"08.0.0.1", HostError::kAmbiguousAddress},
    {"0x1g.0.0.1", HostError::kAmbiguousAddress},
    {"example.123", HostError::kAmbiguousAddress},
    {"example.0x10", HostError::kAmbiguousAddress},
    {"[::1%25eth0]", HostError::kAmbiguousAddress},
    {"[169.254.169.254]", HostError::kAmbiguousAddress},
    {"[::1", HostError::kAmbiguousAddress},
    {"::1::2", HostError::kInvalidChar},
    {"example.com:443", HostError::kInvalidChar},
};
INSTANTIATE_TEST_SUITE_P(Errors, HostErrorTest, testing::ValuesIn(kErrors));

TEST(NormalizeHost, CanonicalisesNames) {
  EXPECT_EQ(NormalizeHost("API.GitHub.COM.").name, "api.github.com");
  EXPECT_EQ(NormalizeHost("_dmarc.example.com").name, "_dmarc.example.com");
  EXPECT_EQ(NormalizeHost("xn--bcher-kva.example").name, "xn--bcher-kva.example");
  EXPECT_EQ(NormalizeHost("1.2.3.4x").name, "1.2.3.4x");  // last label not numeric: a name
  EXPECT_FALSE(NormalizeHost("1.2.3.4x").address);
}

TEST(NormalizeHost, LengthLimitsAreInclusive) {
  std::string label63(63, 'a');
  EXPECT_EQ(NormalizeHost(label63 + ".com").error, HostError::kNone);
  // 253 octets exactly: 63+1+63+1+63+1+61.
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'd');
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_EQ(NormalizeHost(name253).error, HostError::kNone);
  EXPECT_EQ(NormalizeHost(name253 + ".").error, HostError::kNone);
}

}  // namespace
}  // namespace airlock::net
