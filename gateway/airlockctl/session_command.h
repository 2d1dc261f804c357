// `airlockctl session create|ls|rm`: the operator's hold on the gateway's sessions, through its
// control API (docs/GATEWAY.md). Each function runs one subcommand and returns the process exit
// code: 0, or 1 with the reason on `err`. Single-threaded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace airlock::ctl {

// Where the control socket is: `socket` if given, else `listen.control` of the airlock.yaml at
// `config` if given, else the gateway's default.
struct ControlTarget {
  std::string socket;
  std::string config;
};

// The fields of POST /v1/sessions; unset ones are left to the gateway's defaults.
struct SessionCreateArgs {
  std::string policy;
  std::string id;
  std::string source;
  bool no_token = false;
  std::optional<int64_t> ttl_seconds;
  std::map<std::string, std::string> labels;
};

// Prints the created session as the gateway answered it (JSON), with its proxy token and
// placeholders: this answer is the only place they are shown.
int RunSessionCreate(const ControlTarget& target, const SessionCreateArgs& args, std::ostream& out,
                     std::ostream& err);

// Prints the live sessions as a table, or with `json` as GET /v1/sessions answers.
int RunSessionList(const ControlTarget& target, bool json, std::ostream& out, std::ostream& err);

// Ends each session; 1 if any of them is unknown or cannot be ended (the others still are).
int RunSessionRemove(const ControlTarget& target, const std::vector<std::string>& ids,
                     std::ostream& out, std::ostream& err);

}  // namespace airlock::ctl
