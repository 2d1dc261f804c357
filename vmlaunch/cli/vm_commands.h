// The microVM commands of the vmlaunch CLI: image build and snapshot, run, start, exec, job,
// stop, ls, gc, pool. Each
// returns the process exit status; errors go to stderr as "vmlaunch: <what>". Single-threaded.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vmlaunch/image/image_builder.h"
#include "vmlaunch/vm/vm_session.h"

namespace airlock::vmlaunch {

// What one command needs besides the VM: the execution contract's inputs.
struct CommandOptions {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // K=V
  std::string cwd;
  std::string timeout = "30s";
  bool forward_stdin = false;    // send vmlaunch's own stdin to the command
  std::vector<std::string> put;  // local:guest
  std::vector<std::string> get;  // guest:local
  bool json = false;             // print the execution contract as JSON
  bool detach = false;           // exec: a background job that outlives the exec
};

int CmdImageBuild(const ImageOptions& options);
// Boots a template VM of `vm`'s image and shape and saves it as that shape's snapshot.
int CmdImageSnapshot(VmOptions vm);
int CmdRun(VmOptions vm, const CommandOptions& command);
int CmdStart(VmOptions vm, bool json);
int CmdExec(const std::string& state_dir, const std::string& id, const CommandOptions& command);
int CmdStop(const std::string& state_dir, const std::string& id);
// A persistent VM's detached jobs: op "jobs" (list), "wait" (for `job`, up to `timeout`; exits
// as the job did) or "kill" (`job`'s process group, with `signal`).
int CmdJob(const std::string& state_dir, const std::string& id, const std::string& op,
           const std::string& job, int signal, const std::string& timeout);
// The warm pool of `vm`'s image and shape: set its size and fill it; list the pools.
int CmdPoolFill(VmOptions vm, int size);
int CmdPoolList(const std::string& state_dir, bool json_mode);
int CmdList(const std::string& state_dir, bool json);
int CmdGc(const std::string& state_dir, const std::string& pool);

// K=V strings to a map; false (and a message) on a malformed one.
bool ParseEnv(const std::vector<std::string>& env, std::map<std::string, std::string>* out,
              std::string* error);

}  // namespace airlock::vmlaunch
