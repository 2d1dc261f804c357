// Placeholder generation and scanning (see placeholder.h).
#include "gateway/credentials/placeholder.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "gateway/base/percent_encoding.h"
#include "gateway/crypto/random.h"

namespace airlock::credentials {
namespace {

// Hex digit values, -1 for other bytes.
constexpr std::array<int8_t, 256> kHexValue = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<int8_t>(c - 'A' + 10);
  return t;
}();

void CollectFrom(std::string_view text, std::set<std::string>* keys, const KeyFilter* filter) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  constexpr size_t kLen = kPlaceholderKeyLength;
  auto hex = [&](size_t i) { return kHexValue[p[i]] >= 0; };
  // Invariant: every run of kLen or more digits starting before i has been handled, and i is 0
  // or follows a byte that is not a digit.
  size_t i = 0;
  while (i + kLen <= n) {
    // A run of kLen digits starting in [i, i + kLen) covers i + kLen - 1.
    const size_t probe = i + kLen - 1;
    if (!hex(probe)) {
      i = probe + 1;
      continue;
    }
    size_t start = probe;
    while (start > i && hex(start - 1)) --start;
    size_t end = probe + 1;
    while (end < n && hex(end)) ++end;
    if (end - start >= kLen) {
      uint32_t prefix = 0;
      for (size_t k = start; k < start + 4; ++k) prefix = (prefix << 4) | kHexValue[p[k]];
      for (size_t at = start; at + kLen <= end; ++at) {
        prefix = ((prefix << 4) | kHexValue[p[at + 4]]) & 0xFFFFF;
        if (filter && !filter->MayStart(prefix)) continue;
        std::string key(text.substr(at, kLen));
        for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        keys->insert(std::move(key));
      }
    }
    i = end;
  }
}

// Whether decoding could reveal a digit: an escape of one (%30-%39, %41-%46, %61-%66) or of '%'
// itself (%25, double encoding).
bool MayHideDigits(std::string_view text) {
  const char* p = text.data();
  const char* end = p + text.size();
  while (end - p > 2) {
    p = static_cast<const char*>(std::memchr(p, '%', end - p - 2));
    if (!p) return false;
    const char hi = p[1], lo = p[2];
    if ((hi == '3' && lo >= '0' && lo <= '9') || (hi == '2' && lo == '5') ||
        ((hi == '4' || hi == '6') && lo >= '1' && lo <= '6')) {
      return true;
    }
    ++p;
  }
  return false;
}

}  // namespace

std::string NewPlaceholder(std::string_view prefix) {
  return std::string(prefix) + crypto::RandomHex(kPlaceholderKeyLength / 2);
}

std::string PlaceholderKey(std::string_view placeholder) {
  std::string key(
      placeholder.substr(placeholder.size() - std::min(placeholder.size(), kPlaceholderKeyLength)));
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

uint32_t KeyFilter::Prefix(std::string_view key) {
  uint32_t prefix = 0;
  for (size_t i = 0; i < 5 && i < key.size(); ++i) {
    prefix = (prefix << 4) | static_cast<uint32_t>(std::max<int8_t>(
                                 0, kHexValue[static_cast<unsigned char>(key[i])]));
  }
  return prefix;
}

void KeyFilter::Add(std::string_view key) {
  uint32_t prefix = Prefix(key);
  words_[prefix >> 6].fetch_or(uint64_t{1} << (prefix & 63), std::memory_order_relaxed);
}

void CollectPlaceholderKeys(std::string_view text, std::set<std::string>* keys,
                            const KeyFilter* filter) {
  CollectFrom(text, keys, filter);
  // Every round of decoding, not only the last: "%2531..." reads "%31..." once decoded, as an
  // upstream reads it, and its digits would be gone after a second round.
  std::string decoded;
  std::string_view current = text;
  for (int round = 0; round < 3 && MayHideDigits(current); ++round) {
    decoded = PercentDecode(current);
    CollectFrom(decoded, keys, filter);
    current = decoded;
  }
}

}  // namespace airlock::credentials
