// Host patterns in policies: an exact name ("api.github.com") or a leading wildcard
// ("*.pythonhosted.org", any depth of subdomain, not the bare domain). Parsing validates the
// pattern; HostIndex finds, for a request host, the rules whose patterns match it, in O(labels).
// Patterns and indexes are immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/string_hash.h"
#include "gateway/policy/public_suffix.h"

namespace airlock::policy {

struct HostPattern {
  bool wildcard = false;
  std::string domain;  // the exact name, or what follows "*." for a wildcard

  bool Matches(std::string_view name) const;  // `name` is normalised (see net::NormalizeHost)
  std::string ToString() const { return wildcard ? "*." + domain : domain; }
};

enum class SuffixWildcards : uint8_t { kReject, kAccept };

// Validates a pattern as written in a policy; on failure sets *error to a message. Allow lists
// reject wildcards over a public suffix (*.co.uk); deny lists may use them (*.ru).
std::optional<HostPattern> ParseHostPattern(std::string_view text, const PublicSuffixList& psl,
                                            SuffixWildcards suffix_wildcards, std::string* error);

// Maps patterns to the ascending ids of the rules that list them.
class HostIndex {
 public:
  void Add(const HostPattern& pattern, uint32_t rule);

  // Calls f(const std::vector<uint32_t>&) for each list of rules whose pattern matches `name`:
  // the exact entry, then wildcard entries from the longest suffix to the shortest.
  template <typename F>
  void ForEachMatch(std::string_view name, F&& f) const {
    if (auto it = exact_.find(name); it != exact_.end()) f(it->second);
    if (wildcard_.empty()) return;
    for (size_t dot = name.find('.'); dot != std::string_view::npos;
         dot = name.find('.', dot + 1)) {
      if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) f(it->second);
    }
  }
  bool Contains(std::string_view name) const;

 private:
  StringMap<std::vector<uint32_t>> exact_;
  StringMap<std::vector<uint32_t>> wildcard_;
};

}  // namespace airlock::policy
