// Agent: the guest side of vmlaunch's agent protocol. Requests and replies are JSON objects, one
// per line (LineChannel); every request carries an "id" that its replies repeat.
//   {"op":"ping"}                          -> {"ok":true,"uptime_ms":N}
//   {"op":"configure","env":{K:V}}         -> {"ok":true}   session variables for every exec,
//                                             also written to /etc/profile.d/airlock.sh
//   {"op":"exec","argv":[...],"env":{K:V},"cwd":"/","stdin":"<base64>","timeout_ms":N}
//       -> {"stream":"stdout"|"stderr","data":"<base64>"}...   while it runs, then
//          {"exit_code":N,"signal":N,"duration_ms":N,"timed_out":bool}
//          or {"error":"...","exit_code":127|126} if it could not start
//   {"op":"exec",...,"detach":true}       -> {"ok":true,"job":J,"pid":N,"output":P,...} at once: a
//                                             background job that outlives its exec (its
//                                             output goes to file P, no timeout)
//   {"op":"cancel"} (the id of a running exec) -> that exec is killed and ends as above
//   {"op":"jobs"}                          -> {"ok":true,"jobs":[{job,pid,command,output,running,
//                                             exit_code,signal}...]}
//   {"op":"wait","job":J,"timeout_ms":N}   -> the job as in jobs, once it ends or N ms passed
//   {"op":"kill","job":J,"signal":N}       -> {"ok":true}  (N defaults to SIGKILL; the group)
//   {"op":"identity","time_unix_ns":N,"seed":"<base64>","hostname":H,"address":"A/N",
//    "gateway":G,"proxy":URL,"mac":M}      -> {"ok":true,"uptime_ms":N}   a VM restored from a
//                                             snapshot takes on its own clock, entropy and
//                                             network; with only the clock and seed after a
//                                             resume
//   {"op":"trust","ca":PEM,"roots":PEM}   -> {"ok":true,"roots":bool}   the CA bundle (ca_bundle.h)
//                                             put together in the guest: its system roots (or
//                                             "roots", when given), the image's CA, then "ca";
//                                             without "roots" and with no roots of its own the
//                                             guest writes nothing and answers "roots":false
//   {"op":"put","path":P,"data":"<base64>","mode":N} -> {"ok":true}
//   {"op":"get","path":P}                  -> {"ok":true,"data":"<base64>","mode":N}
//   {"op":"shutdown"}                      -> {"ok":true}, then the guest powers off
// A malformed request gets {"error":...} and the agent carries on. The agent greets the host
// with {"event":"ready","uptime_ms":N} when a channel opens. Execs run side by side (up to
// kMaxRunning; their replies interleave, each carrying its exec's id); every other request is
// answered at once. Single-threaded: one poll loop over the channel and every command.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "vmlaunch/guest/ca_bundle.h"
#include "vmlaunch/guest/exec_runner.h"
#include "vmlaunch/guest/guest_identity.h"
#include "vmlaunch/guest/line_channel.h"

namespace airlock::vmlaunch {

struct AgentPaths {
  std::string env_file;  // K=V lines init writes (the CA trust of an image built with one)
  std::string profile;   // where configure writes the session's variables ("" to skip)
  std::string jobs_dir = "/run/airlock/jobs";            // detached jobs' output
  std::string system_roots = std::string(kSystemRoots);  // what `trust` reads
  std::string ca_bundle = std::string(kGuestCaPath);     // and where it writes
  // Gives the machine an identity (ApplyIdentity in a guest; a fake in unit tests).
  std::function<Status(const GuestIdentity&)> apply_identity;
  // Mixes an identity's seed into the random pool (ReseedRandom; a fake in unit tests).
  std::function<Status(const std::string&)> reseed = ReseedRandom;
};

// Reads K=V lines from `path` into `env` (a missing file adds nothing).
void ReadEnvFile(const std::string& path, std::map<std::string, std::string>* env);

class Agent {
 public:
  // Every exec's environment starts from PATH, HOME and LANG plus what paths.env_file holds,
  // and the proxy variables of the identity it was given.
  explicit Agent(AgentPaths paths);
  // Takes on `id` (also what `identity` requests do).
  Status TakeIdentity(const GuestIdentity& id);

  // Greets, then serves requests until the channel closes or a shutdown is requested.
  void Serve(LineChannel& channel);
  bool shutdown_requested() const { return shutdown_; }

  // The largest file put or get moves.
  static constexpr size_t kMaxFile = 64u << 20;
  static constexpr size_t kMaxRunning = 64;
  static constexpr size_t kMaxJobs = 256;
  // The longest timeout (and `wait`) honoured: 30 days.
  static constexpr int64_t kMaxTimeoutMs = int64_t{30} * 24 * 3600 * 1000;

 private:
  struct Running {
    nlohmann::json id;
    std::unique_ptr<ExecProcess> process;
  };
  struct Waiter {
    nlohmann::json id;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Job {
    std::vector<std::string> argv;
    std::string output;
    std::unique_ptr<ExecProcess> process;
    std::vector<Waiter> waiters;
  };

  void Handle(LineChannel& channel, const nlohmann::json& request);
  void Exec(LineChannel& channel, const nlohmann::json& id, const nlohmann::json& request);
  void SendStartError(LineChannel& channel, const nlohmann::json& id, const Status& status);
  // Output, ends and waits of every command, after each poll.
  void StepCommands(LineChannel& channel);
  nlohmann::json JobJson(const std::string& name, const Job& job) const;
  Status Identity(const nlohmann::json& request);

  AgentPaths paths_;
  std::map<std::string, std::string> env_;
  std::optional<std::string> own_roots_, image_ca_;  // what `trust` read (ca_bundle.h)
  std::map<std::string, Running> running_;           // by the exec's id (its JSON text)
  std::map<std::string, Job> jobs_;                  // by name, "job-N"
  int next_job_ = 1;
  bool shutdown_ = false;
};

// Milliseconds since the guest kernel started (/proc/uptime).
int64_t UptimeMs();

}  // namespace airlock::vmlaunch
