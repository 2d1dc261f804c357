// ParseClientHello() on ClientHellos built byte by byte: SNI, ALPN, split records, truncation,
// and malformed input.
#include "gateway/tls/client_hello.h"

#include <gtest/gtest.h>

#include <string>

namespace airlock::tls {
namespace {

std::string U16(size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string U24(size_t v) {
  return {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff),
          static_cast<char>(v & 0xff)};
}

std::string SniExt(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += std::string(1, '\0') + U16(n.size()) + n;
  std::string body = U16(list.size()) + list;
  return U16(0) + U16(body.size()) + body;
}

std::string AlpnExt(const std::vector<std::string>& protos) {
  std::string list;
  for (const auto& p : protos) list += std::string(1, static_cast<char>(p.size())) + p;
  std::string body = U16(list.size()) + list;
  return U16(16) + U16(body.size()) + body;
}

std::string Body(const std::string& extensions) {
  std::string b = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0');
  b += U16(4) + std::string("\x13\x01\x13\x02", 4);
  b += std::string("\x01\x00", 2);
  b += U16(extensions.size()) + extensions;
  return b;
}

std::string Handshake(const std::string& body) { return "\x01" + U24(body.size()) + body; }

std::string Records(const std::string& handshake, size_t split = 0) {
  if (split == 0 || split >= handshake.size()) {
    return "\x16\x03\x01" + U16(handshake.size()) + handshake;
  }
  return "\x16\x03\x01" + U16(split) + handshake.substr(0, split) + "\x16\x03\x01" +
         U16(handshake.size() - split) + handshake.substr(split);
}

TEST(ClientHello, ReadsSniAndAlpn) {
  std::string hello =
      Records(Handshake(Body(SniExt({"api.github.com"}) + AlpnExt({"h2", "http/1.1"}))));
  ClientHello h;
  ASSERT_EQ(ParseClientHello(hello, &h), HelloStatus::kOk);
  EXPECT_EQ(h.sni, "api.github.com");
  EXPECT_EQ(h.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
}

TEST(ClientHello, NoSni) {
  ClientHello h;
  ASSERT_EQ(ParseClientHello(Records(Handshake(Body(AlpnExt({"h2"})))), &h), HelloStatus::kOk);
  EXPECT_FALSE(h.sni);
}

TEST(ClientHello, SplitAcrossRecordsAndTruncated) {
  std::string hs = Handshake(Body(SniExt({"a.example.com"})));
  std::string split = Records(hs, 10);
  ClientHello h;
  ASSERT_EQ(ParseClientHello(split, &h), HelloStatus::kOk);
  EXPECT_EQ(h.sni, "a.example.com");
  for (size_t n = 0; n < split.size(); ++n) {
    EXPECT_EQ(ParseClientHello(split.substr(0, n), &h), HelloStatus::kNeedMore) << n;
  }
}

TEST(ClientHello, NotTls) {
  ClientHello h;
  EXPECT_EQ(ParseClientHello("GET / HTTP/1.1\r\n", &h), HelloStatus::kNotTls);
  EXPECT_EQ(ParseClientHello("SSH-2.0-OpenSSH_9.2\r\n", &h), HelloStatus::kNotTls);
  EXPECT_EQ(ParseClientHello(std::string("\x16\x02", 2), &h), HelloStatus::kNotTls);
}

TEST(ClientHello, Malformed) {
  ClientHello h;
  std::string body = Body(SniExt({"a.example.com"}));
  // Two host names, an empty name, a duplicated extension, a bad extensions length.
  EXPECT_EQ(ParseClientHello(Records(Handshake(Body(SniExt({"a.com", "b.com"})))), &h),
            HelloStatus::kMalformed);
  EXPECT_EQ(ParseClientHello(Records(Handshake(Body(SniExt({""})))), &h), HelloStatus::kMalformed);
  // A NUL inside the name (found by fuzzing: tests/fuzz/corpus/client_hello/regress-*).
  EXPECT_EQ(ParseClientHello(Records(Handshake(Body(SniExt({std::string("a.com\0.b", 8)})))), &h),
            HelloStatus::kMalformed);
  EXPECT_EQ(ParseClientHello(Records(Handshake(Body(SniExt({"a.com"}) + SniExt({"b.com"})))), &h),
            HelloStatus::kMalformed);
  std::string bad_len = body;
  bad_len[bad_len.size() - SniExt({"a.example.com"}).size() - 1] ^= 0x10;
  EXPECT_EQ(ParseClientHello(Records(Handshake(bad_len)), &h), HelloStatus::kMalformed);
  // Not a ClientHello (ServerHello type), then a non-handshake second record.
  std::string server_hello = "\x02" + U24(body.size()) + body;
  EXPECT_EQ(ParseClientHello(Records(server_hello), &h), HelloStatus::kMalformed);
  std::string hs = Handshake(body);
  std::string two = Records(hs, 10);
  two[5 + 10] = 0x17;
  EXPECT_EQ(ParseClientHello(two, &h), HelloStatus::kMalformed);
  // A zero-length record.
  EXPECT_EQ(ParseClientHello(std::string("\x16\x03\x01\x00\x00", 5), &h), HelloStatus::kMalformed);
}

}  // namespace
}  // namespace airlock::tls
