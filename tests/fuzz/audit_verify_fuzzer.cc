// Fuzz target: the audit-log reader behind `airlockctl audit verify` (audit::ChainVerifier). The
// first byte's low bit picks an HMAC key; the rest is split into rotated files at each "\n\0"
// (the newline stays with the file before it). Checks that a chain reported intact has exactly
// one record per sequence number from its first to its last.
#include <string>
#include <string_view>

#include "gateway/audit/verify.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  airlock::audit::ChainVerifier verifier((data[0] & 1) ? "fuzz-hmac-key" : "");
  for (int file = 1; file <= 4; ++file) {
    size_t cut = file < 4 ? rest.find(std::string_view("\n\0", 2)) : std::string_view::npos;
    const bool last = cut == std::string_view::npos;
    std::string_view contents = last ? rest : rest.substr(0, cut + 1);
    verifier.Add("audit.jsonl." + std::to_string(file), contents, last);
    if (last) break;
    rest.remove_prefix(cut + 2);
  }
  const auto& report = verifier.report();
  if (report.ok() && report.records > 0) {
    FUZZ_CHECK(report.last_seq >= report.first_seq);
    FUZZ_CHECK(report.last_seq - report.first_seq + 1 == report.records);
  }
  for (const auto& issue : report.tampering) FUZZ_CHECK(!issue.message.empty());
  return 0;
}
