// Reading audit logs back: verification of the hash chain across rotated files (edits,
// deletions, insertions and reordering are tampering; a torn last line is a crash, reported as
// such), and record iteration for query and tail. Not thread-safe; one caller at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::audit {

// A record as read back from a file.
using ParsedRecord = nlohmann::ordered_json;

struct VerifyIssue {
  std::string file;
  size_t line = 0;  // 1-based
  std::string message;
};

struct VerifyReport {
  uint64_t records = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::vector<VerifyIssue> tampering;  // any entry: the log was altered
  std::vector<VerifyIssue> notes;      // not tampering: a torn last line, a chain start not seen
  bool ok() const { return tampering.empty(); }
};

// Verifies one chain file by file, oldest first. An empty key verifies plain SHA-256 links.
class ChainVerifier {
 public:
  explicit ChainVerifier(std::string_view hmac_key);
  // A file's contents (nullopt: it could not be read). `last`: no file follows, so a torn last
  // line is a crash rather than tampering.
  void Add(const std::string& file, std::optional<std::string_view> contents, bool last);
  const VerifyReport& report() const { return report_; }

 private:
  std::string hmac_key_;
  std::string prev_hash_;  // of the previous line; empty before the first
  uint64_t prev_seq_ = 0;
  VerifyReport report_;
};

// `files` in chain order (oldest first). An empty key verifies plain SHA-256 links.
VerifyReport VerifyFiles(const std::vector<std::string>& files, std::string_view hmac_key);

// A log's files in chain order: path.1, path.2, ... (those that exist), then path itself.
std::vector<std::string> LogFiles(const std::string& path);

// Calls fn for every complete line that parses as a record; returns false if a file is missing.
bool ForEachRecord(const std::vector<std::string>& files,
                   const std::function<void(const ParsedRecord&, std::string_view line)>& fn);

}  // namespace airlock::audit
