// `airlockctl session create|ls|rm` (see session_command.h).
#include "gateway/airlockctl/session_command.h"

#include <algorithm>
#include <iomanip>

#include "gateway/airlockctl/json_field.h"
#include "gateway/config/gateway_config.h"
#include "gateway/control/control_client.h"

namespace airlock::ctl {
namespace {

using nlohmann::json;

// The control socket `target` names; nullopt (the reason on `err`) when its airlock.yaml is
// unusable.
std::optional<std::string> SocketPath(const ControlTarget& target, std::ostream& err) {
  if (!target.socket.empty()) return target.socket;
  if (target.config.empty()) return config::GatewayConfig{}.control_socket;
  config::Diagnostics diags;
  auto c = config::LoadGatewayConfig(target.config, &diags);
  if (!c) {
    err << diags.ToString();
    return std::nullopt;
  }
  return c->control_socket;
}

// An RFC 3339 time without its fraction of a second: 2026-01-02T03:04:05Z.
std::string Seconds(const std::string& ts) {
  size_t dot = ts.find('.');
  return dot == std::string::npos ? ts : ts.substr(0, dot) + "Z";
}

// One session as the table's cells; "-" for what the gateway did not say.
std::vector<std::string> Row(const json& s) {
  std::string labels;
  if (auto it = s.find("labels"); it != s.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      labels += (labels.empty() ? "" : ",") + k + "=" + JsonText(v);
    }
  }
  std::vector<std::string> row = {FieldText(s, "id"),
                                  FieldText(s, "policy"),
                                  Seconds(FieldText(s, "created")),
                                  Seconds(FieldText(s, "expires")),
                                  FieldText(s, "source"),
                                  FieldText(s, "proxy_token") == "true" ? "yes" : "no",
                                  FieldText(s, "connections"),
                                  FieldText(s, "bytes_out"),
                                  FieldText(s, "bytes_in"),
                                  labels};
  for (auto& cell : row) {
    if (cell.empty()) cell = "-";
  }
  return row;
}

// Columns as wide as their widest cell, two spaces apart; the last one as it is.
void PrintTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i + 1 < row.size(); ++i) {
      out << std::left << std::setw(static_cast<int>(width[i] + 2)) << row[i];
    }
    out << row.back() << "\n";
  }
}

}  // namespace

int RunSessionCreate(const ControlTarget& target, const SessionCreateArgs& args, std::ostream& out,
                     std::ostream& err) {
  auto socket = SocketPath(target, err);
  if (!socket) return 1;
  json spec = {{"policy", args.policy}};
  if (!args.id.empty()) spec["id"] = args.id;
  if (!args.source.empty()) spec["source"] = args.source;
  if (args.no_token) spec["token"] = false;
  if (args.ttl_seconds) spec["ttl_seconds"] = *args.ttl_seconds;
  if (!args.labels.empty()) spec["labels"] = args.labels;
  auto session = control::ControlClient(*socket).CreateSession(spec);
  if (!session.ok()) {
    err << "airlockctl: " << session.status().message() << "\n";
    return 1;
  }
  out << session->dump(2) << "\n";
  return 0;
}

int RunSessionList(const ControlTarget& target, bool json_out, std::ostream& out,
                   std::ostream& err) {
  auto socket = SocketPath(target, err);
  if (!socket) return 1;
  auto sessions = control::ControlClient(*socket).ListSessions();
  if (!sessions.ok()) {
    err << "airlockctl: " << sessions.status().message() << "\n";
    return 1;
  }
  if (json_out) {
    out << json{{"sessions", *sessions}}.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "POLICY", "CREATED", "EXPIRES", "ADDRESS",
                                                 "TOKEN", "CONNS", "BYTES OUT", "BYTES IN",
                                                 "LABELS"}};
  for (const auto& s : *sessions) rows.push_back(Row(s));
  PrintTable(rows, out);
  return 0;
}

int RunSessionRemove(const ControlTarget& target, const std::vector<std::string>& ids,
                     std::ostream& out, std::ostream& err) {
  auto socket = SocketPath(target, err);
  if (!socket) return 1;
  control::ControlClient control(*socket);
  int rc = 0;
  for (const auto& id : ids) {
    auto deleted = control.DeleteSession(id);
    if (!deleted.ok()) {
      err << "airlockctl: " << deleted.status().message() << "\n";
      return 1;
    }
    if (*deleted) {
      out << "deleted " << id << "\n";
    } else {
      err << "airlockctl: no session '" << id << "'\n";
      rc = 1;
    }
  }
  return rc;
}

}  // namespace airlock::ctl
