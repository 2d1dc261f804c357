// vmlaunch: sandboxes whose only way out is airlock-gateway.
//   vmlaunch image build                 the guest image (kernel, initramfs, agent, CA)
//   vmlaunch image snapshot              a saved, booted template that `run`/`start` restore
//   vmlaunch run [VM options] -- CMD     an ephemeral microVM (or netns sandbox) for one command
//   vmlaunch start [VM options]          a persistent microVM owned by a monitor process
//   vmlaunch exec [--detach] ID -- CMD | job ls|wait|kill | stop ID | ls | gc
//   vmlaunch pool fill --size N [shape] | pool ls   warm pools of restored VMs
//   vmlaunch net install|uninstall|add-link|remove-link|add-tap|del-link
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "vmlaunch/backends/netns_backend.h"
#include "vmlaunch/cli/vm_commands.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"
#include "vmlaunch/process/process.h"

namespace {

using airlock::vmlaunch::CommandOptions;
using airlock::vmlaunch::VmOptions;

// Where the guest agent and init are: built next to this executable (guest/), or installed
// (AIRLOCK_GUEST_DIR, set by the build to the install prefix's lib/airlock/guest).
std::string GuestDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string beside = (ec ? std::filesystem::path(".") : p.parent_path()).string() + "/guest";
  return std::filesystem::exists(beside + "/airlock-agent", ec) ? beside : AIRLOCK_GUEST_DIR;
}

struct VmFlags {
  std::string memory = "512M";
  std::string ttl = "1h";
};

// The options that decide a VM's shape (and so which snapshot fits it).
void AddShapeOptions(CLI::App* c, VmOptions* vm, VmFlags* flags) {
  c->add_option("--state-dir", vm->state_dir, "Where VM state, leases and sockets live")
      ->capture_default_str();
  c->add_option("--memory", flags->memory, "Guest memory (e.g. 512M, 1G)")->capture_default_str();
  c->add_option("--cpus", vm->vcpus, "Guest vCPUs")->capture_default_str();
  c->add_option("--accel", vm->accel, "QEMU accelerator: auto, kvm or tcg")->capture_default_str();
  c->add_option("--image", vm->image, "A guest image directory, or the cache holding one")
      ->capture_default_str();
  c->add_option("--overlay", vm->overlay, "The guest's writable space")->capture_default_str();
  c->add_flag("--rootfs", vm->rootfs, "Boot on the image's Debian root disk (read-only + overlay)");
  c->add_option("--boot-timeout-ms", vm->boot_timeout, "How long a boot may take")
      ->capture_default_str();
}
void AddVmOptions(CLI::App* c, VmOptions* vm, VmFlags* flags) {
  AddShapeOptions(c, vm, flags);
  c->add_option("--policy", vm->policy, "The gateway policy for the session")->required();
  c->add_flag_function(
      "--cold", [vm](int64_t) { vm->start = airlock::vmlaunch::VmStart::kCold; },
      "Boot the kernel even when a snapshot of the image and shape exists");
  c->add_option("--control", vm->control_socket, "The gateway's control socket")
      ->capture_default_str();
  c->add_option("--pool", vm->pool, "Address range, a /30 per sandbox")->capture_default_str();
  c->add_option("--proxy-port", vm->proxy_port, "The gateway's proxy port")->capture_default_str();
  c->add_option("--ttl", flags->ttl, "Session lifetime (30s, 10m, 1h)")->capture_default_str();
}

void AddCommandOptions(CLI::App* c, CommandOptions* cmd, bool files) {
  c->add_option("--env,-e", cmd->env, "K=V for the command (repeatable)")->allow_extra_args(false);
  c->add_option("--cwd", cmd->cwd, "Working directory in the guest");
  c->add_option("--timeout", cmd->timeout, "Kill the command after this long (0: never)")
      ->capture_default_str();
  c->add_flag("--stdin,-i", cmd->forward_stdin, "Send vmlaunch's stdin to the command");
  c->add_flag("--json", cmd->json,
              "Print the execution contract: stdout, stderr, exit_code, signal, duration_ms, "
              "timed_out" +
                  std::string(files ? ", files, timings_ms" : ""));
  if (files) {
    c->add_option("--put", cmd->put, "LOCAL:/GUEST/PATH, copied in before the command")
        ->allow_extra_args(false);
    c->add_option("--get", cmd->get, "/GUEST/PATH:LOCAL, copied out after it")
        ->allow_extra_args(false);
  }
  c->add_option("command", cmd->argv, "The command (after --)")->required();
}

// Converts the flag strings into the options' typed fields.
bool ApplyVmFlags(const VmFlags& flags, VmOptions* vm) {
  auto memory = airlock::vmlaunch::ParseSize(flags.memory);
  auto ttl = airlock::vmlaunch::ParseDuration(flags.ttl);
  if (!memory) {
    std::cerr << "vmlaunch: --memory '" << flags.memory << "': use e.g. 512M\n";
    return false;
  }
  if (!ttl) {
    std::cerr << "vmlaunch: --ttl '" << flags.ttl << "': use e.g. 30s, 10m, 1h\n";
    return false;
  }
  vm->memory_mib = static_cast<int>(*memory >> 20);
  vm->ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vmlaunch: sandboxes whose only way out is airlock-gateway"};
  app.require_subcommand(1);
  std::string state_dir = "/run/airlock";
  std::string pool = "100.96.0.0/16";

  // image build
  auto* image = app.add_subcommand("image", "The guest image");
  image->require_subcommand(1);
  airlock::vmlaunch::ImageOptions image_opts;
  image_opts.agent = GuestDir() + "/airlock-agent";
  image_opts.init = GuestDir() + "/init.sh";
  auto* build = image->add_subcommand("build", "Build (or find in the cache) the guest image");
  build->add_option("--cache", image_opts.cache_dir, "The image cache")->capture_default_str();
  build->add_option("--kernel-package", image_opts.kernel_package)->capture_default_str();
  build->add_option("--kernel-deb", image_opts.kernel_deb, "A local kernel .deb instead");
  build->add_option("--agent", image_opts.agent, "The static guest agent")->capture_default_str();
  build->add_option("--init", image_opts.init, "The guest init script")->capture_default_str();
  build->add_option("--busybox", image_opts.busybox)->capture_default_str();
  build->add_option("--ca-cert", image_opts.ca_cert, "The gateway's CA certificate (PEM)");
  build->add_flag("--rootfs", image_opts.rootfs,
                  "Also build a Debian root disk (debootstrap: curl, git, python3, "
                  "ca-certificates)");
  build->add_option("--rootfs-size", image_opts.rootfs_size)->capture_default_str();
  build->add_option("--mirror", image_opts.mirror, "Debian mirror for debootstrap");
  VmOptions snap_vm;
  VmFlags snap_flags;
  auto* snapshot = image->add_subcommand(
      "snapshot",
      "Boot a template VM of this shape once and save it: later VMs of the image and shape "
      "restore it instead of booting");
  AddShapeOptions(snapshot, &snap_vm, &snap_flags);

  // run
  VmOptions run_vm;
  VmFlags run_flags;
  CommandOptions run_cmd;
  std::string backend = "qemu";
  auto* run = app.add_subcommand("run",
                                 "Run a command in a fresh sandbox, print its output, exit with "
                                 "its status, tear everything down");
  run->add_option("--backend", backend, "qemu, firecracker or netns")->capture_default_str();
  AddVmOptions(run, &run_vm, &run_flags);
  AddCommandOptions(run, &run_cmd, true);

  // start / exec / stop / ls / gc
  VmOptions start_vm;
  VmFlags start_flags;
  bool start_json = false;
  auto* start = app.add_subcommand("start", "Start a persistent microVM; prints its ID");
  start->add_option("--backend", start_vm.backend, "qemu or firecracker")->capture_default_str();
  AddVmOptions(start, &start_vm, &start_flags);
  start->add_flag("--json", start_json, "Print the VM's details as JSON");
  std::string standby_after = "0";
  start
      ->add_option("--standby-after", standby_after,
                   "Suspend the VM to disk after this long without a request (e.g. 15s; 0: "
                   "never); the next request resumes it")
      ->capture_default_str();
  start->add_option("--standby-dir", start_vm.standby_dir, "Where suspended VMs' state goes")
      ->capture_default_str();
  std::string id;
  CommandOptions exec_cmd;
  auto* exec = app.add_subcommand("exec", "Run a command in a persistent microVM");
  exec->add_option("id", id, "The VM (from start or ls)")->required();
  exec->add_option("--state-dir", state_dir)->capture_default_str();
  AddCommandOptions(exec, &exec_cmd, false);
  exec->add_flag("--detach,-d", exec_cmd.detach,
                 "Start the command as a background job that outlives this exec (see `job`); "
                 "prints its name");
  std::string job_op = "jobs", job_name, job_timeout = "0";
  int job_signal = 9;
  auto* job = app.add_subcommand("job", "A persistent microVM's detached jobs");
  job->require_subcommand(1);
  auto* job_ls = job->add_subcommand("ls", "List the jobs (JSON)");
  auto* job_wait = job->add_subcommand("wait", "Wait for a job to end; exit as it did");
  auto* job_kill = job->add_subcommand("kill", "Signal a job's process group");
  for (auto* sub : {job_ls, job_wait, job_kill}) {
    sub->add_option("id", id, "The VM")->required();
    sub->add_option("--state-dir", state_dir)->capture_default_str();
  }
  for (auto* sub : {job_wait, job_kill}) sub->add_option("job", job_name, "The job")->required();
  job_wait->add_option("--timeout", job_timeout, "Give up after this long (0: never)")
      ->capture_default_str();
  job_kill->add_option("--signal", job_signal, "The signal number")->capture_default_str();
  auto* stop = app.add_subcommand("stop", "Stop a persistent microVM and give everything back");
  stop->add_option("id", id)->required();
  stop->add_option("--state-dir", state_dir)->capture_default_str();
  bool ls_json = false;
  auto* ls = app.add_subcommand("ls", "List microVMs");
  ls->add_option("--state-dir", state_dir)->capture_default_str();
  ls->add_flag("--json", ls_json);
  auto* gc = app.add_subcommand("gc",
                                "Give back what dead VMs and sandboxes still hold: VMMs, "
                                "cgroups, sessions, firewall elements, taps, leases, files");
  gc->add_option("--state-dir", state_dir)->capture_default_str();
  gc->add_option("--pool", pool)->capture_default_str();

  // pool
  auto* pool_cmd = app.add_subcommand("pool", "Warm pools of restored VMs, per image and shape");
  pool_cmd->require_subcommand(1);
  VmOptions pool_vm;
  VmFlags pool_flags;
  int pool_size = 2;
  auto* pool_fill = pool_cmd->add_subcommand(
      "fill", "Keep SIZE restored VMs of this image and shape ready (needs its snapshot)");
  AddShapeOptions(pool_fill, &pool_vm, &pool_flags);
  pool_fill->add_option("--size", pool_size, "How many VMs to keep ready (0 empties the pool)")
      ->capture_default_str();
  pool_fill->add_option("--control", pool_vm.control_socket, "The gateway's control socket")
      ->capture_default_str();
  pool_fill->add_option("--pool", pool_vm.pool, "Address range")->capture_default_str();
  bool pool_json = false;
  auto* pool_ls = pool_cmd->add_subcommand("ls", "List the pools");
  pool_ls->add_option("--state-dir", state_dir)->capture_default_str();
  pool_ls->add_flag("--json", pool_json);
  // net
  auto* net = app.add_subcommand("net", "The host firewall for sandbox links (nftables)");
  net->require_subcommand(1);
  airlock::vmnet::GatewayPorts ports;
  auto* install = net->add_subcommand("install", "Install or refresh the airlock table");
  install->add_option("--proxy-port", ports.proxy)->capture_default_str();
  install->add_option("--transparent-port", ports.transparent)->capture_default_str();
  install->add_option("--dns-port", ports.dns)->capture_default_str();
  auto* uninstall = net->add_subcommand("uninstall", "Remove the airlock table");
  std::string iface, address;
  auto* add = net->add_subcommand("add-link", "Register a session link (interface, guest IPv4)");
  add->add_option("iface", iface)->required();
  add->add_option("address", address)->required();
  std::string gateway_address;
  auto* add_tap = net->add_subcommand("add-tap",
                                      "Create a tap link for a microVM, with the "
                                      "gateway address of its /30");
  add_tap->add_option("iface", iface)->required();
  add_tap->add_option("gateway", gateway_address)->required();
  auto* del_link = net->add_subcommand("del-link", "Delete a link (tap or veth)");
  del_link->add_option("iface", iface)->required();
  auto* remove = net->add_subcommand("remove-link", "Unregister a session link");
  remove->add_option("iface", iface)->required();
  remove->add_option("address", address)->required();
  CLI11_PARSE(app, argc, argv);

  namespace vl = airlock::vmlaunch;
  if (build->parsed()) return vl::CmdImageBuild(image_opts);
  if (snapshot->parsed()) {
    if (!ApplyVmFlags(snap_flags, &snap_vm)) return 2;
    return vl::CmdImageSnapshot(snap_vm);
  }
  if (run->parsed()) {
    if (backend == "netns") {
      vl::NetnsRunOptions n;
      n.policy = run_vm.policy;
      n.control_socket = run_vm.control_socket;
      n.state_dir = run_vm.state_dir;
      n.pool = run_vm.pool;
      n.proxy_port = run_vm.proxy_port;
      auto ttl = vl::ParseDuration(run_flags.ttl);
      n.ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl.value_or(std::chrono::hours(1)));
      std::string error;
      if (!vl::ParseEnv(run_cmd.env, &n.env, &error)) {
        std::cerr << "vmlaunch: " << error << "\n";
        return 125;
      }
      n.argv = run_cmd.argv;
      auto rc = vl::RunInNetns(n);
      if (!rc.ok()) {
        std::cerr << "vmlaunch: " << rc.status().message() << "\n";
        return 125;
      }
      return rc.value();
    }
    run_vm.backend = backend;
    if (!ApplyVmFlags(run_flags, &run_vm)) return 2;
    return vl::CmdRun(run_vm, run_cmd);
  }
  if (start->parsed()) {
    if (!ApplyVmFlags(start_flags, &start_vm)) return 2;
    auto standby = vl::ParseDuration(standby_after);
    if (!standby) {
      std::cerr << "vmlaunch: --standby-after '" << standby_after << "': use e.g. 15s, 10m, 0\n";
      return 2;
    }
    start_vm.standby_after = *standby;
    return vl::CmdStart(start_vm, start_json);
  }
  if (exec->parsed()) return vl::CmdExec(state_dir, id, exec_cmd);
  if (job->parsed()) {
    job_op = job_wait->parsed() ? "wait" : job_kill->parsed() ? "kill" : "jobs";
    return vl::CmdJob(state_dir, id, job_op, job_name, job_signal, job_timeout);
  }
  if (pool_fill->parsed()) {
    if (!ApplyVmFlags(pool_flags, &pool_vm)) return 2;
    return vl::CmdPoolFill(pool_vm, pool_size);
  }
  if (pool_ls->parsed()) return vl::CmdPoolList(state_dir, pool_json);
  if (stop->parsed()) return vl::CmdStop(state_dir, id);
  if (ls->parsed()) return vl::CmdList(state_dir, ls_json);
  if (gc->parsed()) return vl::CmdGc(state_dir, pool);

  airlock::vmnet::NftTable table;
  airlock::Status status;
  if (add_tap->parsed()) {
    auto gw = airlock::net::IpAddress::Parse(gateway_address);
    status = gw ? airlock::vmnet::CreateTapLink(iface, *gw)
                : airlock::Status::Error("'" + gateway_address + "' is not an IP address");
  } else if (del_link->parsed()) {
    status = airlock::vmnet::DeleteLink(iface);
  } else if (install->parsed()) {
    status = table.Install(ports);
  } else if (uninstall->parsed()) {
    status = table.Uninstall();
  } else {
    auto addr = airlock::net::IpAddress::Parse(address);
    if (!addr) {
      std::cerr << "vmlaunch: '" << address << "' is not an IP address\n";
      return 2;
    }
    status = add->parsed() ? table.AddLink(iface, *addr) : table.RemoveLink(iface, *addr);
  }
  if (!status.ok()) {
    std::cerr << "vmlaunch: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
