// Placeholders: what a sandbox holds instead of a credential. A placeholder is the credential's
// configured prefix (`ghp_`, `sk-`) and 36 random hex digits; the digits are its key. Finding
// placeholders in request text looks at every run of 36 or more hex digits, after decoding
// percent-escapes, case-insensitively, so a placeholder is found however it was re-cased,
// escaped or split from its prefix. Pure apart from the random digits; no thread ownership.
#pragma once

#include <set>
#include <string>
#include <string_view>

namespace airlock::credentials {

inline constexpr size_t kPlaceholderKeyLength = 36;

// A new placeholder: `prefix` and 36 random hex digits.
std::string NewPlaceholder(std::string_view prefix);

// The key of a placeholder (its last 36 characters, lower-cased).
std::string PlaceholderKey(std::string_view placeholder);

// Adds to `keys` every candidate key in `text`: each 36-digit window of a hex run, lower-cased,
// in the text as it is and with its percent-escapes decoded.
void CollectPlaceholderKeys(std::string_view text, std::set<std::string>* keys);

}  // namespace airlock::credentials
