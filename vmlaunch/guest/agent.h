// Agent: the guest side of vmlaunch's agent protocol. Requests and replies are JSON objects, one
// per line (LineChannel); every request carries an "id" that its replies repeat.
//   {"op":"ping"}                          -> {"ok":true,"uptime_ms":N}
//   {"op":"configure","env":{K:V}}         -> {"ok":true}   session variables for every exec,
//                                             also written to /etc/profile.d/airlock.sh
//   {"op":"exec","argv":[...],"env":{K:V},"cwd":"/","stdin":"<base64>","timeout_ms":N}
//       -> {"stream":"stdout"|"stderr","data":"<base64>"}...   while it runs, then
//          {"exit_code":N,"signal":N,"duration_ms":N,"timed_out":bool}
//          or {"error":"...","exit_code":127|126} if it could not start
//   {"op":"cancel"} (while an exec runs)  -> the exec is killed and ends as above
//   {"op":"put","path":P,"data":"<base64>","mode":N} -> {"ok":true}
//   {"op":"get","path":P}                  -> {"ok":true,"data":"<base64>","mode":N}
//   {"op":"shutdown"}                      -> {"ok":true}, then the guest powers off
// A malformed request gets {"error":...} and the agent carries on. The agent greets the host
// with {"event":"ready","uptime_ms":N} when a channel opens. Single-threaded; one request at a
// time.
#pragma once

#include <map>
#include <string>

#include "vmlaunch/guest/line_channel.h"

namespace airlock::vmlaunch {

class Agent {
 public:
  // `base_env`: the environment every exec starts from (PATH, HOME, the proxy and CA variables
  // that init wrote); `profile_path`: where configure writes the session's variables for login
  // shells ("" to skip).
  Agent(std::map<std::string, std::string> base_env, std::string profile_path);

  // Greets, then serves requests until the channel closes or a shutdown is requested.
  void Serve(LineChannel& channel);
  bool shutdown_requested() const { return shutdown_; }

  // The largest file put or get moves.
  static constexpr size_t kMaxFile = 64u << 20;

 private:
  void Handle(LineChannel& channel, const nlohmann::json& request);
  void Exec(LineChannel& channel, const nlohmann::json& id, const nlohmann::json& request);

  std::map<std::string, std::string> env_;
  std::string profile_path_;
  bool shutdown_ = false;
};

// Milliseconds since the guest kernel started (/proc/uptime).
int64_t UptimeMs();

}  // namespace airlock::vmlaunch
