// `airlockctl audit` subcommands.
#include "gateway/airlockctl/audit_command.h"

#include <sys/stat.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "gateway/airlockctl/json_field.h"
#include "gateway/audit/verify.h"

namespace airlock::ctl {
namespace {

using Record = audit::ParsedRecord;

bool Matches(const Record& r, const AuditFilter& f) {
  auto eq = [&](const std::string& want, const char* key) {
    return want.empty() || FieldText(r, key) == want;
  };
  std::string ts = FieldText(r, "ts");
  return eq(f.session, "session") && eq(f.decision, "decision") && eq(f.host, "host") &&
         eq(f.event, "event") && (f.since.empty() || ts >= f.since) &&
         (f.until.empty() || ts < f.until);
}

void PrintTableHeader(std::ostream& out) {
  out << std::left << std::setw(28) << "TS" << std::setw(29) << "EVENT" << std::setw(21)
      << "SESSION" << std::setw(9) << "DECISION" << std::setw(24) << "REASON"
      << "DESTINATION (RULE)\n";
}

void PrintTableRow(const Record& r, std::ostream& out) {
  std::string dest = FieldText(r, "host");
  if (r.contains("port")) dest += ":" + FieldText(r, "port");
  if (r.contains("name")) dest += FieldText(r, "name") + " " + FieldText(r, "qtype");  // dns.query
  if (r.contains("rule")) dest += " (" + FieldText(r, "rule") + ")";
  out << std::left << std::setw(28) << FieldText(r, "ts") << std::setw(29) << FieldText(r, "event")
      << std::setw(21) << FieldText(r, "session") << std::setw(9) << FieldText(r, "decision")
      << std::setw(24) << FieldText(r, "reason") << dest << "\n";
}

}  // namespace

int RunAuditVerify(const std::vector<std::string>& paths, const std::string& hmac_key_file,
                   std::ostream& out, std::ostream& err) {
  std::string key;
  if (!hmac_key_file.empty()) {
    std::ifstream in(hmac_key_file, std::ios::binary);
    if (!in) {
      err << hmac_key_file << ": cannot read the HMAC key\n";
      return 2;
    }
    std::getline(in, key);
  }
  std::vector<std::string> files = paths.size() == 1 ? audit::LogFiles(paths[0]) : paths;
  audit::VerifyReport report = audit::VerifyFiles(files, key);
  for (const auto& n : report.notes) {
    out << n.file << ":" << n.line << ": note: " << n.message << "\n";
  }
  for (const auto& t : report.tampering) {
    err << t.file << ":" << t.line << ": TAMPERED: " << t.message << "\n";
  }
  if (!report.ok()) {
    err << "FAILED: the audit chain is broken (" << report.tampering.size() << " problem(s) in "
        << report.records << " records)\n";
    return 1;
  }
  out << "ok: " << report.records << " records";
  if (report.records > 0) out << ", seq " << report.first_seq << ".." << report.last_seq;
  out << ", " << files.size() << " file(s), chain intact\n";
  return 0;
}

int RunAuditQuery(const std::string& path, const AuditFilter& filter, bool table, std::ostream& out,
                  std::ostream& err) {
  if (table) PrintTableHeader(out);
  bool read =
      audit::ForEachRecord(audit::LogFiles(path), [&](const Record& r, std::string_view line) {
        if (!Matches(r, filter)) return;
        if (table) {
          PrintTableRow(r, out);
        } else {
          out << line << "\n";
        }
      });
  if (!read) {
    err << path << ": cannot read the audit log\n";
    return 1;
  }
  return 0;
}

int RunAuditTail(const std::string& path, const AuditFilter& filter, size_t lines, bool follow,
                 std::ostream& out, std::ostream& err) {
  std::deque<std::string> last;
  bool read = audit::ForEachRecord({path}, [&](const Record& r, std::string_view line) {
    if (!Matches(r, filter)) return;
    last.emplace_back(line);
    if (last.size() > lines) last.pop_front();
  });
  if (!read) {
    err << path << ": cannot read the audit log\n";
    return 1;
  }
  for (const auto& l : last) out << l << "\n";
  out.flush();
  if (!follow) return 0;
  struct stat st {};
  stat(path.c_str(), &st);
  ino_t inode = st.st_ino;
  std::streamoff offset = st.st_size;
  std::string partial;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (stat(path.c_str(), &st) != 0) continue;
    if (st.st_ino != inode || st.st_size < offset) {  // rotated
      inode = st.st_ino;
      offset = 0;
      partial.clear();
    }
    if (st.st_size == offset) continue;
    std::ifstream in(path, std::ios::binary);
    in.seekg(offset);
    std::string chunk(static_cast<size_t>(st.st_size - offset), '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    offset += in.gcount();
    partial.append(chunk.data(), static_cast<size_t>(in.gcount()));
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      auto r = Record::parse(line, nullptr, false);
      if (!r.is_discarded() && Matches(r, filter)) out << line << "\n";
    }
    out.flush();
  }
}

}  // namespace airlock::ctl
