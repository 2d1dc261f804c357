// Fuzz target: the end of an HTTP answer read from a unix-socket API (control::ParseHttpAnswer:
// the gateway's control API, Firecracker's API). The first byte picks where the bytes are cut.
// Checks that an answer (or a refusal) reached on a prefix is the answer (or a refusal) on the
// whole, that a closed connection always ends in an answer or a refusal, and that a body is
// never longer than what arrived.
#include <string>
#include <string_view>

#include "gateway/control/unix_http.h"
#include "tests/fuzz/fuzz_check.h"

using airlock::control::ParseHttpAnswer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 60000) return 0;  // under the 64 KiB the headers may take
  const std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t step = 1 + data[0] % 97;
  const auto whole = ParseHttpAnswer(raw, /*closed=*/true);
  FUZZ_CHECK(!whole.ok() || whole->has_value());
  if (whole.ok()) FUZZ_CHECK((*whole)->body.size() <= raw.size());
  for (size_t cut = 0; cut <= raw.size(); cut += step) {
    const auto part = ParseHttpAnswer(raw.substr(0, cut), /*closed=*/false);
    if (!part.ok()) {
      FUZZ_CHECK(!ParseHttpAnswer(raw, /*closed=*/false).ok());
      break;
    }
    if (part->has_value()) {
      const auto open = ParseHttpAnswer(raw, /*closed=*/false);
      FUZZ_CHECK(open.ok() && open->has_value());
      FUZZ_CHECK((*open)->status == (*part)->status && (*open)->body == (*part)->body);
      break;
    }
  }
  return 0;
}
