// What token issuers print: RFC 3339 and Unix-seconds expiries, exec helper output and AWS keys.
#include "gateway/credentials/token_json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace airlock::credentials {
namespace {

// Seconds since the epoch, or -1 for nullopt: exact values in one comparable form.
// What Seconds() gives for TimePoint::max(): a token that does not expire.
const int64_t kNever =
    std::chrono::duration_cast<std::chrono::seconds>(TimePoint::max().time_since_epoch()).count();

int64_t Seconds(const std::optional<TimePoint>& t) {
  if (!t) return -1;
  return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

constexpr int64_t kDec2 = 1796205600;  // 2026-12-02T10:00:00Z (python3 calendar.timegm)

TEST(ParseRfc3339Test, AcceptsZoneFractionsAndOffsets) {
  struct Case {
    const char* text;
    int64_t want;
  };
  for (const Case& c : std::vector<Case>{
           {"2026-12-02T10:00:00Z", kDec2},
           {"2026-12-02T10:00:00.5Z", kDec2},  // fractions are dropped
           {"2026-12-02T10:00:00.123456789Z", kDec2},
           {"2026-12-02t10:00:00z", kDec2},
           {"2026-12-02 10:00:00Z", kDec2},  // RFC 3339 section 5.6 allows a space
           {"2026-12-02T10:00:00+00:00", kDec2},
           {"2026-12-02T10:00:00-00:00", kDec2},
           {"2026-12-02T10:00:00+02:00", kDec2 - 2 * 3600},
           {"2026-12-02T10:00:00-05:30", kDec2 + 5 * 3600 + 30 * 60},
           {"2026-12-02T10:00:00.250+01:00", kDec2 - 3600},
           {"1970-01-01T00:00:00Z", 0},
           {"2016-12-31T23:59:59Z", 1483228799},
           {"2016-12-31T23:59:60Z", 1483228800},  // a leap second rolls over
           // Before 1970 is long expired; in 1013 it once overflowed the clock (fuzzing found it).
           {"1013-12-02T10:00:00.123+01:00", 0},
           {"1969-12-31T23:59:59Z", 0},
       }) {
    EXPECT_EQ(Seconds(ParseRfc3339(c.text)), c.want) << c.text;
  }
}

TEST(ParseRfc3339Test, RefusesWhatIsNotRfc3339) {
  for (const char* text : {
           "",
           "2026-12-02T10:00:00",            // no zone
           "2026-12-02",                     // a date alone
           "2026-13-02T10:00:00Z",           // month 13
           "2026-00-02T10:00:00Z",           // month 0
           "2026-12-00T10:00:00Z",           // day 0
           "2026-12-32T10:00:00Z",           // day 32
           "2026-12-02T24:00:00Z",           // hour 24
           "2026-12-02T10:60:00Z",           // minute 60
           "2026-12-02T10:00:61Z",           // second 61
           "2026-12-02T10:00:00Zjunk",       // trailing junk
           "2026-12-02T10:00:00Z ",          // trailing space
           "2026-12-02T10:00:00+02:00x",     // junk after the offset
           "2026-12-02T10:00:00+0200",       // offset without ':'
           "2026-12-02T10:00:00+02",         // offset without minutes
           "2026-12-02T10:00:00+2:00",       // one-digit offset hour
           "2026-12-02T10:00:00 UTC",        // a zone name
           "2026-12-02X10:00:00Z",           // bad separator
           "2026/12/02T10:00:00Z",           // bad date separators
           "2026-12-02T10-00-00Z",           // bad time separators
           "26-12-02T10:00:00Z",             // two-digit year
           "2026-1-02T10:00:00Z",            // one-digit month
           "+2026-12-02T10:00:00Z",          // signed year
           "2026-12-02T10:00:00.123456789",  // a fraction but no zone
           "1796205600",                     // Unix seconds as text
       }) {
    EXPECT_EQ(Seconds(ParseRfc3339(text)), -1) << text;
  }
}

TEST(ParseExpiryTest, TextOrPositiveUnixSeconds) {
  struct Case {
    nlohmann::json value;
    int64_t want;
  };
  for (const Case& c : std::vector<Case>{
           {"2026-12-02T10:00:00Z", kDec2},
           {"2026-12-02T10:00:00+02:00", kDec2 - 7200},
           {kDec2, kDec2},
           {static_cast<uint64_t>(kDec2), kDec2},
           {1, 1},
           {4102444800, 4102444800},  // 2100-01-01T00:00:00Z
           {32503680001, kNever},     // past 2200: no expiry (the clock ends in 2262)
           {int64_t{9223372036854775807}, kNever},
           {uint64_t{18446744073709551615u}, kNever},
           {0, -1},
           {-1, -1},
           {-1796205600, -1},
           {1796205600.0, -1},  // a float is not Unix seconds here
           {1796205600.5, -1},
           {true, -1},
           {false, -1},
           {nullptr, -1},
           {"", -1},
           {"1796205600", -1},  // seconds as a string are not RFC 3339
           {"tomorrow", -1},
           {nlohmann::json::array({kDec2}), -1},
           {nlohmann::json::object({{"at", kDec2}}), -1},
       }) {
    EXPECT_EQ(Seconds(ParseExpiry(c.value)), c.want) << c.value.dump();
  }
}

// system_clock counts nanoseconds in 64 bits and ends in April 2262: expiries past 2200 ("never"
// is often written 9999-12-31T23:59:59Z) mean no expiry instead of wrapping into the past.
TEST(ParseExpiryTest, FarFutureExpiriesMeanNoExpiry) {
  for (const nlohmann::json& value : std::vector<nlohmann::json>{
           "2262-04-11T23:47:17Z", "2300-01-01T00:00:00Z", "2999-12-31T23:59:59Z",
           "9999-12-31T23:59:59Z", 9223372037, 32503680000, 18446744073709551615ull}) {
    auto t = ParseExpiry(value);
    ASSERT_TRUE(t) << value.dump();
    EXPECT_EQ(*t, TimePoint::max()) << value.dump();
  }
}

TEST(ParseRfc3339Test, RefusesImpossibleDatesEmptyFractionsAndOffsetsOutOfRange) {
  for (const char* text : {"2026-02-31T10:00:00Z", "2026-04-31T10:00:00Z", "2026-12-02T10:00:00.Z",
                           "2026-12-02T10:00:00+99:99", "2026-12-02T10:00:00+24:00"}) {
    EXPECT_FALSE(ParseRfc3339(text)) << text;
  }
  EXPECT_TRUE(ParseRfc3339("2028-02-29T10:00:00Z"));  // a leap day
}

TEST(ParseExecOutputTest, ReadsTokenAndExpiry) {
  struct Case {
    const char* output;
    const char* token;
    int64_t expires;  // -1: does not expire
  };
  for (const Case& c : std::vector<Case>{
           {R"({"token": "t0k"})", "t0k", -1},
           {R"({"token": "t0k", "expires_at": null})", "t0k", -1},
           {R"({"token": "t0k", "expires_at": "2026-12-02T10:00:00Z"})", "t0k", kDec2},
           {R"({"token": "t0k", "expires_at": 1796205600})", "t0k", kDec2},
           {R"( {"expires_at": 1796205600, "token": "a b\u00e9", "extra": [1]} )"
            "\n",
            "a b\xc3\xa9", kDec2},
       }) {
    auto t = ParseExecOutput(c.output);
    ASSERT_TRUE(t.ok()) << c.output << ": " << t.status().message();
    EXPECT_EQ(t->value, c.token) << c.output;
    EXPECT_EQ(t->key_id, "");
    EXPECT_EQ(t->session_token, "");
    if (c.expires < 0) {
      EXPECT_EQ(t->expires_at, TimePoint::max()) << c.output;
    } else {
      EXPECT_EQ(Seconds(t->expires_at), c.expires) << c.output;
    }
  }
}

TEST(ParseExecOutputTest, ErrorsNeverQuoteTheToken) {
  const std::string secret = "s3cr3t-T0KEN-value";
  struct Case {
    std::string output;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"{}", "the helper's output has no \"token\" string"},
           {R"({"access_token": ")" + secret + R"("})",
            "the helper's output has no \"token\" string"},
           {R"({"token": ""})", "the helper's output has no \"token\" string"},
           {R"({"token": 12345})", "the helper's output has no \"token\" string"},
           {R"({"token": [")" + secret + R"("]})", "the helper's output has no \"token\" string"},
           {R"({"token": {"value": ")" + secret + R"("}})",
            "the helper's output has no \"token\" string"},
           {R"({"token": ")" + secret + R"(", "expires_at": "soon"})",
            "the helper's \"expires_at\" is neither RFC 3339 nor a number"},
           {R"({"token": ")" + secret + R"(", "expires_at": 0})",
            "the helper's \"expires_at\" is neither RFC 3339 nor a number"},
           {R"({"token": ")" + secret + R"(", "expires_at": true})",
            "the helper's \"expires_at\" is neither RFC 3339 nor a number"},
           {"[\"" + secret + "\"]", "the helper's output is not a JSON object"},
           {"\"" + secret + "\"", "the helper's output is not a JSON object"},
           {secret, "the helper's output is not a JSON object"},
           {R"({"token": ")" + secret, "the helper's output is not a JSON object"},
           {R"({"token": ")" + secret + R"("} trailing)",
            "the helper's output is not a JSON object"},
           {"", "the helper's output is not a JSON object"},
       }) {
    auto t = ParseExecOutput(c.output);
    ASSERT_FALSE(t.ok()) << c.output;
    EXPECT_EQ(t.status().message(), c.error) << c.output;
    EXPECT_EQ(t.status().message().find(secret), std::string::npos);
    EXPECT_EQ(t.status().message().find("12345"), std::string::npos);
  }
}

TEST(ParseAwsKeysTest, ReadsTheCredentialProcessShape) {
  auto keys = ParseAwsKeys(R"({
    "Version": 1,
    "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "SessionToken": "FQoGZXIvYXdzEXAMPLE",
    "Expiration": "2026-12-02T10:00:00Z"
  })");
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(keys->key_id, "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(keys->value, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  EXPECT_EQ(keys->session_token, "FQoGZXIvYXdzEXAMPLE");
  EXPECT_EQ(Seconds(keys->expires_at), kDec2);

  struct Case {
    const char* output;
    int64_t expires;  // -1: does not expire
  };
  for (const Case& c : std::vector<Case>{
           {R"({"Version": 1, "AccessKeyId": "AKID", "SecretAccessKey": "SK"})", -1},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": "SK", "Expiration": null})", -1},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": "SK",
                "Expiration": "2026-12-02T11:00:00.000+01:00"})",
            kDec2},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": "SK", "Expiration": 1796205600})", kDec2},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": "SK", "SessionToken": 7})", -1},
       }) {
    auto k = ParseAwsKeys(c.output);
    ASSERT_TRUE(k.ok()) << c.output << ": " << k.status().message();
    EXPECT_EQ(k->key_id, "AKID");
    EXPECT_EQ(k->value, "SK");
    EXPECT_EQ(k->session_token, "") << c.output;  // a non-string SessionToken is ignored
    if (c.expires < 0) {
      EXPECT_EQ(k->expires_at, TimePoint::max()) << c.output;
    } else {
      EXPECT_EQ(Seconds(k->expires_at), c.expires) << c.output;
    }
  }
}

TEST(ParseAwsKeysTest, ErrorsNeverQuoteTheSecret) {
  const std::string secret = "wJalrXUtnFEMI-SECRET";
  const std::string need = "the AWS keys need \"AccessKeyId\" and \"SecretAccessKey\" strings";
  struct Case {
    std::string output;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"AccessKeyId": "AKID"})", need},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": ""})", need},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": 5})", need},
           {R"({"SecretAccessKey": ")" + secret + R"("})", need},
           {R"({"AccessKeyId": "", "SecretAccessKey": ")" + secret + R"("})", need},
           {R"({"accesskeyid": "AKID", "secretaccesskey": ")" + secret + R"("})", need},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": ")" + secret +
                R"(", "Expiration": "2026-12-02"})",
            "the AWS keys' \"Expiration\" is not RFC 3339"},
           {R"({"AccessKeyId": "AKID", "SecretAccessKey": ")" + secret +
                R"(", "Expiration": false})",
            "the AWS keys' \"Expiration\" is not RFC 3339"},
           {"AKID " + secret, "the AWS keys are not a JSON object"},
           {R"([{"AccessKeyId": "AKID", "SecretAccessKey": ")" + secret + R"("}])",
            "the AWS keys are not a JSON object"},
           {"", "the AWS keys are not a JSON object"},
       }) {
    auto k = ParseAwsKeys(c.output);
    ASSERT_FALSE(k.ok()) << c.output;
    EXPECT_EQ(k.status().message(), c.error) << c.output;
    EXPECT_EQ(k.status().message().find(secret), std::string::npos);
  }
}

}  // namespace
}  // namespace airlock::credentials
