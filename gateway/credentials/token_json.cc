// Token and expiry parsing (see token_json.h).
#include "gateway/credentials/token_json.h"

#include <charconv>
#include <climits>
#include <cstdint>
#include <ctime>

namespace airlock::credentials {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Unix seconds as a time point. The clock counts nanoseconds and ends in 2262: anything past
// 2200 ("9999-12-31T23:59:59Z" is a common "never") means no expiry rather than a wrap.
TimePoint FromUnixSeconds(int64_t seconds) {
  constexpr int64_t kYear2200 = 7258118400;
  if (seconds >= kYear2200) return TimePoint::max();
  if (seconds < 0) return TimePoint{};  // before 1970: long expired (and out of the clock's range)
  return TimePoint(std::chrono::seconds(seconds));
}

std::optional<nlohmann::json> ParseObject(std::string_view output) {
  auto j = nlohmann::json::parse(output, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

std::optional<TimePoint> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t digits = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == digits) return std::nullopt;  // a '.' needs digits
  }
  long offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset = (s[pos] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;  // February 31st
  time_t t = timegm(&tm);
  return FromUnixSeconds(static_cast<int64_t>(t) - offset);
}

std::optional<TimePoint> ParseExpiry(const nlohmann::json& value) {
  if (value.is_string()) return ParseRfc3339(value.get_ref<const std::string&>());
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v == 0) return std::nullopt;
    return FromUnixSeconds(v > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(v));
  }
  if (value.is_number_integer()) {
    auto v = value.get<int64_t>();
    if (v <= 0) return std::nullopt;
    return FromUnixSeconds(v);
  }
  return std::nullopt;
}

Result<Token> ParseExecOutput(std::string_view output) {
  auto j = ParseObject(output);
  if (!j) return Status::Error("the helper's output is not a JSON object");
  auto token = j->find("token");
  if (token == j->end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    return Status::Error("the helper's output has no \"token\" string");
  }
  Token t;
  t.value = token->get<std::string>();
  if (auto e = j->find("expires_at"); e != j->end() && !e->is_null()) {
    auto at = ParseExpiry(*e);
    if (!at) return Status::Error("the helper's \"expires_at\" is neither RFC 3339 nor a number");
    t.expires_at = *at;
  }
  return t;
}

Result<Token> ParseAwsKeys(std::string_view output) {
  auto j = ParseObject(output);
  if (!j) return Status::Error("the AWS keys are not a JSON object");
  auto str = [&](const char* key) -> std::string {
    auto it = j->find(key);
    return it != j->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Token t;
  t.key_id = str("AccessKeyId");
  t.value = str("SecretAccessKey");
  t.session_token = str("SessionToken");
  if (t.key_id.empty() || t.value.empty()) {
    return Status::Error("the AWS keys need \"AccessKeyId\" and \"SecretAccessKey\" strings");
  }
  if (auto e = j->find("Expiration"); e != j->end() && !e->is_null()) {
    auto at = ParseExpiry(*e);
    if (!at) return Status::Error("the AWS keys' \"Expiration\" is not RFC 3339");
    t.expires_at = *at;
  }
  return t;
}

}  // namespace airlock::credentials
