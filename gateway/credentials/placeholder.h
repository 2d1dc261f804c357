// Placeholders: what a sandbox holds instead of a credential. A placeholder is the credential's
// configured prefix (`ghp_`, `sk-`) and 36 random hex digits; the digits are its key. Finding
// placeholders in request text looks at every run of 36 or more hex digits, after decoding
// percent-escapes, case-insensitively, so a placeholder is found however it was re-cased,
// escaped or split from its prefix. Pure apart from the random digits; KeyFilter is shared
// between threads as it says.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::credentials {

inline constexpr size_t kPlaceholderKeyLength = 36;

// A new placeholder: `prefix` and 36 random hex digits.
std::string NewPlaceholder(std::string_view prefix);

// The key of a placeholder (its last 36 characters, lower-cased).
std::string PlaceholderKey(std::string_view placeholder);

// Which keys may be live, by their first five digits: a 2^20-bit map the owner of the keys (the
// session table) sets in Add() and recomputes in Rebuild(), both under its own lock. MayStart()
// is lock-free and safe from any thread; it never says no for a key that was added and not
// rebuilt away, and says yes for other windows about once per 3,500 live keys in 2^20.
class KeyFilter {
 public:
  void Add(std::string_view key);
  template <typename Keys>  // any range of std::string keys
  void Rebuild(const Keys& keys) {
    std::vector<uint64_t> words(kWords, 0);
    for (const auto& key : keys) Set(&words, KeyFilter::Prefix(key));
    for (size_t i = 0; i < kWords; ++i) words_[i].store(words[i], std::memory_order_relaxed);
  }
  bool MayStart(uint32_t prefix) const {
    return (words_[prefix >> 6].load(std::memory_order_relaxed) >> (prefix & 63)) & 1;
  }
  static uint32_t Prefix(std::string_view key);  // its first five digits as a number

 private:
  static constexpr size_t kWords = (1 << 20) / 64;
  static void Set(std::vector<uint64_t>* words, uint32_t prefix) {
    (*words)[prefix >> 6] |= uint64_t{1} << (prefix & 63);
  }
  std::array<std::atomic<uint64_t>, kWords> words_{};
};

// Adds to `keys` every candidate key in `text`: each 36-digit window of a hex run, lower-cased,
// in the text as it is and, where an escape could hide a digit, with its percent-escapes
// decoded. With a `filter`, only windows it may start. Linear in the text; text without long hex
// runs is skipped 36 bytes at a time.
void CollectPlaceholderKeys(std::string_view text, std::set<std::string>* keys,
                            const KeyFilter* filter = nullptr);

}  // namespace airlock::credentials
