// Fuzz target: request path normalisation and path globs (policy::NormalizePath, PathGlob). The
// input is a request target, or a glob and a target separated by a newline. Checks that a
// normalised path is normalised already (so a policy and the upstream read it alike), starts with
// '/', and holds no dot-segment, and that an ambiguous path says why.
#include <string_view>

#include "gateway/policy/path.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using airlock::policy::NormalizePath;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view pattern;
  std::string_view target = input;
  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    pattern = input.substr(0, nl);
    target = input.substr(nl + 1);
  }
  std::string why;
  auto path = NormalizePath(target, &why);
  if (!path) {
    FUZZ_CHECK(!why.empty());
  } else {
    FUZZ_CHECK(!path->empty() && path->front() == '/');
    FUZZ_CHECK(path->find("/../") == std::string::npos && path->find("/./") == std::string::npos);
    FUZZ_CHECK(path->find('?') == std::string::npos);
    auto again = NormalizePath(*path);
    FUZZ_CHECK(again && *again == *path);
  }
  std::string error;
  if (auto glob = airlock::policy::PathGlob::Parse(pattern, &error)) {
    if (path) (void)glob->Matches(*path);
    FUZZ_CHECK(glob->text() == pattern);
  } else if (!pattern.empty()) {
    FUZZ_CHECK(!error.empty());
  }
  return 0;
}
