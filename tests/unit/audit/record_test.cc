// audit::Record: what it writes is JSON that says exactly what was set; strings are escaped and
// bytes that are not UTF-8 are replaced, never passed into the log.
#include "gateway/audit/record.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace airlock::audit {
namespace {

nlohmann::json Parse(const Record& r) { return nlohmann::json::parse("{" + r.members() + "}"); }

TEST(AuditRecord, WritesEveryKindOfValue) {
  Record r("http.request");
  r.Set("conn", uint64_t{18446744073709551615u})
      .Set("delta", int64_t{-5})
      .Set("port", 443)
      .Set("inspected", true)
      .Set("host", std::string("api.example.com"))
      .Set("credentials", std::vector<std::string>{"github", "openai"})
      .Set("empty", std::vector<std::string>{});
  EXPECT_EQ(r.members(),
            R"("event":"http.request","conn":18446744073709551615,"delta":-5,"port":443,)"
            R"("inspected":true,"host":"api.example.com","credentials":["github","openai"],)"
            R"("empty":[])");
  auto j = Parse(r);
  EXPECT_EQ(j["conn"].get<uint64_t>(), 18446744073709551615u);
  EXPECT_EQ(j["credentials"][1], "openai");
}

TEST(AuditRecord, SharedFieldsFollowTheEvent) {
  Record shared;
  shared.Set("conn", 7).Set("host", "a.example");
  Record r("http.request", shared);
  r.Set("rule", "r1");
  EXPECT_EQ(r.members(), R"("event":"http.request","conn":7,"host":"a.example","rule":"r1")");
  EXPECT_EQ(Record("e", Record()).members(), R"("event":"e")");   // nothing shared: no comma
  EXPECT_EQ(shared.members(), R"("conn":7,"host":"a.example")");  // left as it was
}

TEST(AuditRecord, EscapesStrings) {
  Record r("e");
  r.Set("path", std::string_view("/a\"b\\c\n\r\t\b\f\x01\x1f\x7f", 14));
  EXPECT_EQ(r.members(), R"("event":"e","path":"/a\"b\\c\n\r\t\b\f\u0001\u001f)"
                         "\x7f\"");
  EXPECT_EQ(Parse(r)["path"], std::string("/a\"b\\c\n\r\t\b\f\x01\x1f\x7f", 14));
}

TEST(AuditRecord, KeepsUtf8AndReplacesWhatIsNot) {
  const std::string valid = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x91";
  EXPECT_EQ(Parse(Record("e").Set("s", valid))["s"], valid);
  const std::string fffd = "\xEF\xBF\xBD";
  struct Case {
    std::string in, out;
  } cases[] = {
      {"\xC0\x80", fffd + fffd},                        // overlong NUL
      {"\xED\xA0\x80", fffd + fffd + fffd},             // a UTF-16 surrogate
      {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},  // above U+10FFFF
      {"a\xC3", "a" + fffd},                            // cut short
      {"\xE2\x82", fffd + fffd},                        // cut short
      {"\x80x", fffd + "x"},                            // a lone continuation byte
      {"\xFF", fffd},
  };
  for (const auto& c : cases) {
    Record r("e");
    r.Set("s", c.in);
    EXPECT_EQ(Parse(r)["s"], c.out) << r.members();
  }
}

TEST(AuditRecord, RandomBytesAlwaysMakeJsonAndValidTextSurvives) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 0x80 : 0x80 + rng() % 0x80);
    Record r("e");
    r.Set("s", s);
    auto j = nlohmann::json::parse("{" + r.members() + "}", nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.members();
    // Text nlohmann itself accepts as UTF-8 comes back unchanged.
    bool valid = true;
    try {
      (void)nlohmann::json(s).dump();
    } catch (const nlohmann::json::exception&) {
      valid = false;
    }
    if (valid) {
      EXPECT_EQ(j["s"], s);
    }
  }
}

}  // namespace
}  // namespace airlock::audit
