// DNS message parsing and answers: well-formed queries, EDNS, and every malformed form.
#include "gateway/dns/message.h"

#include <gtest/gtest.h>

#include <string>

namespace airlock::dns {
namespace {

std::string Name(const std::string& dotted) {
  std::string out;
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t dot = dotted.find('.', start);
    std::string label = dotted.substr(start, dot == std::string::npos ? dot : dot - start);
    out += static_cast<char>(label.size()) + label;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out + std::string(1, '\0');
}

std::string Query(const std::string& name, uint16_t type, uint16_t flags = 0x0100, uint16_t qd = 1,
                  uint16_t ar = 0, const std::string& tail = "") {
  std::string q = {'\x12',
                   '\x34',
                   static_cast<char>(flags >> 8),
                   static_cast<char>(flags & 0xff),
                   0,
                   static_cast<char>(qd),
                   0,
                   0,
                   0,
                   0,
                   0,
                   static_cast<char>(ar)};
  q += Name(name) + std::string{0, static_cast<char>(type), 0, 1} + tail;
  return q;
}

const std::string kOpt = std::string("\0\0\x29\x10\x00\0\0\0\0\0\0", 11);

TEST(DnsMessage, ParsesAQueryAndAnswersIt) {
  dns::Query q;
  ASSERT_EQ(ParseQuery(Query("API.Example.test", kTypeA), &q), ParseStatus::kOk);
  EXPECT_EQ(q.id, 0x1234);
  EXPECT_EQ(q.name, "API.Example.test");
  EXPECT_EQ(q.type, kTypeA);
  EXPECT_TRUE(q.recursion_desired);
  std::vector<net::IpAddress> addrs = {*net::IpAddress::Parse("127.0.0.2"),
                                       *net::IpAddress::Parse("fd12::2")};
  std::string a = BuildAnswer(q, Rcode::kNoError, addrs, 30);
  EXPECT_EQ(a.substr(0, 2), "\x12\x34");
  EXPECT_EQ(static_cast<uint8_t>(a[2]), 0x81);  // QR + RD
  EXPECT_EQ(static_cast<uint8_t>(a[3]), 0x80);  // RA, NOERROR
  EXPECT_EQ(a[7], 1) << "one A record (the AAAA address is not of the asked type)";
  EXPECT_EQ(a.substr(a.size() - 4), std::string("\x7f\x00\x00\x02", 4));
  EXPECT_EQ(a.substr(a.size() - 10, 4), std::string("\0\0\0\x1e", 4)) << "TTL 30";
}

TEST(DnsMessage, ErrorsAndNoData) {
  dns::Query q;
  ASSERT_EQ(ParseQuery(Query("x.test", 16), &q), ParseStatus::kOk);  // TXT
  std::string nodata = BuildAnswer(q, Rcode::kNoError, {*net::IpAddress::Parse("1.2.3.4")}, 30);
  EXPECT_EQ(nodata[7], 0);
  EXPECT_EQ(static_cast<uint8_t>(BuildAnswer(q, Rcode::kNxDomain, {}, 0)[3]) & 0xf, 3);
  EXPECT_EQ(static_cast<uint8_t>(BuildAnswer(q, Rcode::kRefused, {}, 0)[3]) & 0xf, 5);
  std::string formerr = BuildError(Query("x.test", 1), Rcode::kFormErr);
  EXPECT_EQ(formerr.size(), 12u);
  EXPECT_EQ(static_cast<uint8_t>(formerr[3]) & 0xf, 1);
  EXPECT_EQ(BuildError("\x01", Rcode::kFormErr), "");
}

TEST(DnsMessage, Edns) {
  dns::Query q;
  ASSERT_EQ(ParseQuery(Query("x.test", kTypeAaaa, 0x0100, 1, 1, kOpt), &q), ParseStatus::kOk);
  EXPECT_EQ(q.opt, kOpt);
  std::string a = BuildAnswer(q, Rcode::kNoError, {*net::IpAddress::Parse("fd12::2")}, 5);
  EXPECT_EQ(a[11], 1) << "an OPT record in the answer too";
}

TEST(DnsMessage, Malformed) {
  dns::Query q;
  EXPECT_EQ(ParseQuery(Query("x.test", 1, 0x0100, 2), &q), ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(Query("x.test", 1, 0x0100, 0), &q), ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(Query("x.test", 1) + "junk", &q), ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(Query("x.test", 1).substr(0, 20), &q), ParseStatus::kMalformed);
  std::string pointer = Query("x.test", 1);
  pointer.replace(12, 2, "\xc0\x0c");
  EXPECT_EQ(ParseQuery(pointer, &q), ParseStatus::kMalformed);
  std::string long_label = Query(std::string(64, 'a') + ".test", 1);
  EXPECT_EQ(ParseQuery(long_label, &q), ParseStatus::kMalformed);
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'b') + ".";
  EXPECT_EQ(ParseQuery(Query(long_name + "test", 1), &q), ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(Query("x.test", 1, 0x0100, 1, 1, "not an opt"), &q),
            ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(std::string(5000, '\0'), &q), ParseStatus::kMalformed);
  EXPECT_EQ(ParseQuery(Query("x.test", 1, 0x2100), &q), ParseStatus::kNotImplemented);
  EXPECT_EQ(ParseQuery(Query("x.test", 1, 0x8180), &q), ParseStatus::kIgnore);
  EXPECT_EQ(ParseQuery("short", &q), ParseStatus::kIgnore);
}

}  // namespace
}  // namespace airlock::dns
