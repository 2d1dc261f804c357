// Chain verification and record iteration.
#include "gateway/audit/verify.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/audit/chain.h"

namespace airlock::audit {
namespace {

bool ReadAll(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

std::vector<std::string> LogFiles(const std::string& path) {
  std::vector<std::string> files;
  for (int i = 1; std::filesystem::exists(path + "." + std::to_string(i)); ++i) {
    files.push_back(path + "." + std::to_string(i));
  }
  files.push_back(path);
  return files;
}

ChainVerifier::ChainVerifier(std::string_view hmac_key) : hmac_key_(hmac_key) {}

void ChainVerifier::Add(const std::string& file, std::optional<std::string_view> contents,
                        bool last) {
  if (!contents) {
    report_.tampering.push_back({file, 0, "cannot read the file"});
    return;
  }
  std::string_view data = *contents;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    ++line_no;
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      VerifyIssue torn{file, line_no,
                       "torn last line (" + std::to_string(data.size() - pos) +
                           " bytes without a newline): a write cut short, e.g. by a crash"};
      if (last) {
        report_.notes.push_back(torn);
      } else {
        report_.tampering.push_back({file, line_no, "incomplete line inside the chain"});
      }
      break;
    }
    std::string_view line = data.substr(pos, nl - pos);
    pos = nl + 1;
    auto rec = ParsedRecord::parse(line, nullptr, false);
    if (rec.is_discarded() || !rec.is_object() || !rec.contains("seq") ||
        !rec["seq"].is_number_unsigned() || !rec.contains("prev") || !rec["prev"].is_string()) {
      report_.tampering.push_back({file, line_no, "not an audit record"});
      prev_hash_ = LinkHash(line, hmac_key_);
      continue;
    }
    uint64_t seq = rec["seq"].get<uint64_t>();
    const std::string& prev = rec["prev"].get_ref<const std::string&>();
    if (report_.records == 0) {
      report_.first_seq = seq;
      if (seq == 1 && prev != kGenesisPrev) {
        report_.tampering.push_back({file, line_no, "the first record does not start the chain"});
      } else if (seq != 1) {
        report_.notes.push_back({file, line_no,
                                 "the chain starts at seq " + std::to_string(seq) +
                                     " (earlier files not given); its first link is unchecked"});
      }
    } else {
      if (seq != prev_seq_ + 1) {
        report_.tampering.push_back({file, line_no,
                                     "seq " + std::to_string(seq) + " follows seq " +
                                         std::to_string(prev_seq_) +
                                         ": records were deleted, inserted or reordered"});
      }
      if (prev != prev_hash_) {
        report_.tampering.push_back(
            {file, line_no,
             "prev does not match the previous line: a record before it was edited, deleted "
             "or reordered"});
      }
    }
    prev_hash_ = LinkHash(line, hmac_key_);
    prev_seq_ = seq;
    report_.last_seq = seq;
    ++report_.records;
  }
}

VerifyReport VerifyFiles(const std::vector<std::string>& files, std::string_view hmac_key) {
  ChainVerifier verifier(hmac_key);
  for (size_t f = 0; f < files.size(); ++f) {
    std::string data;
    const bool read = ReadAll(files[f], &data);
    verifier.Add(files[f], read ? std::optional<std::string_view>(data) : std::nullopt,
                 f + 1 == files.size());
  }
  return verifier.report();
}

bool ForEachRecord(const std::vector<std::string>& files,
                   const std::function<void(const ParsedRecord&, std::string_view line)>& fn) {
  bool all = true;
  for (const auto& file : files) {
    std::string data;
    if (!ReadAll(file, &data)) {
      all = false;
      continue;
    }
    size_t pos = 0;
    while (pos < data.size()) {
      size_t nl = data.find('\n', pos);
      if (nl == std::string::npos) break;  // torn tail
      std::string_view line(data.data() + pos, nl - pos);
      pos = nl + 1;
      auto rec = ParsedRecord::parse(line, nullptr, false);
      if (!rec.is_discarded()) fn(rec, line);
    }
  }
  return all;
}

}  // namespace airlock::audit
