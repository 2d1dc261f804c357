// `airlockctl audit verify|query|tail`: the auditor's tools. Each runs one subcommand and returns
// the process exit code. Single-threaded.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace airlock::ctl {

struct AuditFilter {
  std::string session;
  std::string decision;
  std::string host;
  std::string event;
  std::string since;  // RFC 3339 prefix compared as text, inclusive
  std::string until;  // exclusive
};

// Verifies the chain. One PATH means that log with its rotated files (PATH.1, PATH.2, ...).
// 0 when intact (notes such as a torn last line are printed), 1 on tampering.
int RunAuditVerify(const std::vector<std::string>& paths, const std::string& hmac_key_file,
                   std::ostream& out, std::ostream& err);

// Prints matching records as JSON lines or as a table.
int RunAuditQuery(const std::string& path, const AuditFilter& filter, bool table, std::ostream& out,
                  std::ostream& err);

// Prints the last `lines` matching records, then, with `follow`, new ones as they are written
// (surviving rotation) until interrupted.
int RunAuditTail(const std::string& path, const AuditFilter& filter, size_t lines, bool follow,
                 std::ostream& out, std::ostream& err);

}  // namespace airlock::ctl
