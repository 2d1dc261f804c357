// Fuzz target: the YAML loaders of policies (policy::LoadPolicyText) and of airlock.yaml
// (config::LoadGatewayConfigText, credentials included); the first byte picks one. Checks that a
// file is either loaded or refused with at least one diagnostic naming the file, never both.
#include <string>

#include "gateway/config/gateway_config.h"
#include "gateway/policy/policy_loader.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  airlock::config::Diagnostics diags;
  bool loaded;
  if (data[0] & 1) {
    airlock::policy::LoadOptions options;
    options.known_credentials = std::set<std::string>{"github", "openai"};
    loaded = airlock::policy::LoadPolicyText(text, "fuzz.yaml", options, &diags).has_value();
  } else {
    loaded = airlock::config::LoadGatewayConfigText(text, "fuzz.yaml", &diags).has_value();
  }
  FUZZ_CHECK(loaded == diags.empty());
  for (const auto& d : diags.items()) {
    FUZZ_CHECK(d.file == "fuzz.yaml" && !d.message.empty() && d.line >= 0 && d.column >= 0);
  }
  (void)diags.ToString();
  return 0;
}
