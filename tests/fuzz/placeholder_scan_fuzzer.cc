// Fuzz target: the placeholder/leak scanner (credentials::CollectPlaceholderKeys) and the base64
// runs of a URL (DecodedBase64Runs). Checks the fast scanner against the plain definition: every
// 36-digit hex window of the text, as sent and with its percent-escapes decoded once (as an
// upstream reads it), is found; and a KeyFilter holding those keys hides none of them.
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "gateway/base/percent_encoding.h"
#include "gateway/credentials/injection.h"
#include "gateway/credentials/placeholder.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using airlock::credentials::kPlaceholderKeyLength;

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Every window of 36 hex digits, lower-cased: the definition the scanner must meet.
void NaiveWindows(std::string_view text, std::set<std::string>* out) {
  size_t run = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    run = IsHex(text[i]) ? run + 1 : 0;
    if (run >= kPlaceholderKeyLength) {
      std::string key(text.substr(i + 1 - kPlaceholderKeyLength, kPlaceholderKeyLength));
      for (char& c : key) c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
      out->insert(std::move(key));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace creds = airlock::credentials;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::set<std::string> found;
  creds::CollectPlaceholderKeys(text, &found);
  for (const auto& key : found) {
    FUZZ_CHECK(key.size() == kPlaceholderKeyLength);
    for (char c : key) FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
  std::set<std::string> expected;
  NaiveWindows(text, &expected);
  NaiveWindows(airlock::PercentDecode(text), &expected);
  for (const auto& key : expected) FUZZ_CHECK(found.count(key) == 1);

  auto filter = std::make_unique<creds::KeyFilter>();
  for (const auto& key : expected) filter->Add(key);
  std::set<std::string> filtered;
  creds::CollectPlaceholderKeys(text, &filtered, filter.get());
  for (const auto& key : expected) FUZZ_CHECK(filtered.count(key) == 1);
  for (const auto& key : filtered) FUZZ_CHECK(found.count(key) == 1);

  for (const std::string& run : creds::DecodedBase64Runs(text)) FUZZ_CHECK(!run.empty());
  return 0;
}
