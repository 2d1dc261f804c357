// Chain hashing, timestamps, redaction.
#include "gateway/audit/chain.h"

#include <ctime>

#include "gateway/crypto/digest.h"

namespace airlock::audit {

std::string LinkHash(std::string_view line, std::string_view hmac_key) {
  return hmac_key.empty() ? crypto::Sha256Hex(line) : crypto::HmacSha256Hex(hmac_key, line);
}

std::string FormatTimestamp(std::chrono::system_clock::time_point t) {
  using std::chrono::duration_cast;
  auto us = duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long long frac = us % 1000000;
  if (frac < 0) {  // before 1970: the second below, and a positive fraction
    --secs;
    frac += 1000000;
  }
  // The date and time of day change once a second, and every audit record asks: kept per thread.
  thread_local std::time_t cached_secs = -1;
  thread_local char cached[64];
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  std::string out(cached);
  out.push_back('.');
  char digits[6];
  for (int i = 5; i >= 0; --i, frac /= 10) digits[i] = static_cast<char>('0' + frac % 10);
  out.append(digits, 6);
  out.push_back('Z');
  return out;
}

std::string RedactTarget(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  bool first = true;
  while (true) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    size_t eq = pair.find('=');
    out += pair.substr(0, eq);
    if (eq != std::string_view::npos) out += "=_";
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace airlock::audit
