// Pure pieces of vmlaunch: the QEMU command line, the Firecracker config document (checked
// against the documented --config-file format), the bzImage payload search, sizes and
// durations, the VM record's round trip; CA trust (the variables, the bundle, the netns
// sandbox's environment) and the control client's GET /v1/ca against a stand-in socket.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "gateway/control/control_client.h"
#include "tests/unit/support/stand_in_server.h"
#include "vmlaunch/backends/firecracker_backend.h"
#include "vmlaunch/backends/host_tsc.h"
#include "vmlaunch/backends/netns_backend.h"
#include "vmlaunch/backends/qemu_backend.h"
#include "vmlaunch/ca_trust.h"
#include "vmlaunch/image/image_builder.h"
#include "vmlaunch/image/kernel_image.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/snapshot.h"
#include "vmlaunch/vm/vm_record.h"

namespace airlock::vmlaunch {
namespace {

VmSpec Spec() {
  VmSpec s;
  s.id = "vm-0a1b2c3d";
  s.dir = "/run/airlock/vms/vm-0a1b2c3d";
  s.kernel = "/img/vmlinux";
  s.initrd = "/img/initrd.img";
  s.tap = "alvm-0a1b2c3d";
  s.mac = "52:41:0a:1b:2c:3d";
  s.kernel_args = "airlock.ip=100.96.0.2/30 airlock.gw=100.96.0.1";
  s.memory_mib = 384;
  s.vcpus = 2;
  return s;
}

// The value after `flag` in argv, or "".
std::string After(const std::vector<std::string>& argv, const std::string& flag, size_t nth = 0) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag && nth-- == 0) return argv[i + 1];
  }
  return "";
}

TEST(QemuArgv, MicrovmWithVirtioMmioDevices) {
  auto argv = QemuArgv(Spec(), "/run/agent.sock");
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_EQ(After(argv, "-machine").rfind("microvm,", 0), 0u);
  EXPECT_EQ(After(argv, "-accel"), "tcg,tb-size=64");
  EXPECT_EQ(After(argv, "-cpu"), "max");
  EXPECT_EQ(After(argv, "-m"), "384");
  EXPECT_EQ(After(argv, "-smp"), "2");
  EXPECT_EQ(After(argv, "-kernel"), "/img/vmlinux");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "-nodefaults"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "-no-reboot"), argv.end());
  EXPECT_NE(After(argv, "-append").find("airlock.ip=100.96.0.2/30"), std::string::npos);
  EXPECT_EQ(After(argv, "-netdev"), "tap,id=net0,ifname=alvm-0a1b2c3d,script=no,downscript=no");
  EXPECT_EQ(After(argv, "-device", 0), "virtio-serial-device");
  EXPECT_EQ(After(argv, "-chardev"), "socket,id=agent,path=/run/agent.sock");
  EXPECT_EQ(After(argv, "-device", 1), "virtserialport,chardev=agent,name=airlock.agent");
  EXPECT_EQ(After(argv, "-device", 2), "virtio-net-device,netdev=net0,mac=52:41:0a:1b:2c:3d");
  EXPECT_EQ(After(argv, "-drive"), "");  // no root disk unless asked
}

TEST(QemuArgv, KvmAndReadOnlyRootDisk) {
  VmSpec s = Spec();
  s.accel = "kvm";
  s.rootfs = "/img/rootfs.ext4";
  auto argv = QemuArgv(s, "/a.sock");
  EXPECT_EQ(After(argv, "-accel"), "kvm");
  EXPECT_EQ(After(argv, "-cpu"), "host");
  EXPECT_EQ(After(argv, "-drive"), "id=root,file=/img/rootfs.ext4,format=raw,if=none,readonly=on");
  EXPECT_EQ(After(argv, "-device", 3), "virtio-blk-device,drive=root");
}

// A snapshot's template keeps its memory in a shared file (left out of the saved state); a VM
// restored from it maps that file privately and waits for its state on QMP.
TEST(QemuArgv, SnapshotTemplateAndRestore) {
  VmSpec s = Spec();
  s.memory_file = "/img/snapshots/k/memory";
  s.memory_shared = true;
  auto argv = QemuArgv(s, "/a.sock");
  EXPECT_NE(After(argv, "-machine").find(",memory-backend=mem0"), std::string::npos);
  EXPECT_EQ(After(argv, "-object"),
            "memory-backend-file,id=mem0,size=384M,mem-path=/img/snapshots/k/memory,share=on");
  EXPECT_EQ(After(argv, "-qmp"), "unix:/run/airlock/vms/vm-0a1b2c3d/qmp.sock,server=on,wait=off");
  EXPECT_EQ(After(argv, "-incoming"), "");
  s.memory_shared = false;
  s.restore_state = "/img/snapshots/k/state";
  argv = QemuArgv(s, "/a.sock");
  EXPECT_EQ(After(argv, "-object"),
            "memory-backend-file,id=mem0,size=384M,mem-path=/img/snapshots/k/memory,share=off");
  EXPECT_EQ(After(argv, "-incoming"), "defer");
  // Resumed from standby after a restore: the same named memory, anonymous.
  s.memory_file.clear();
  s.memory_named = true;
  s.restore_state = "/var/lib/airlock/standby/vm-0a1b2c3d.state";
  argv = QemuArgv(s, "/a.sock");
  EXPECT_NE(After(argv, "-machine").find(",memory-backend=mem0"), std::string::npos);
  EXPECT_EQ(After(argv, "-object"), "memory-backend-ram,id=mem0,size=384M");
  EXPECT_EQ(After(argv, "-incoming"), "defer");
  // Without a memory file: anonymous memory, as before.
  EXPECT_EQ(After(QemuArgv(Spec(), "/a.sock"), "-object"), "");
  EXPECT_EQ(After(QemuArgv(Spec(), "/a.sock"), "-machine").find("memory-backend"),
            std::string::npos);
}

// Every part of the shape, and the VMM build, picks a different snapshot.
TEST(SnapshotKey, EachPartOfTheShapeCounts) {
  const VmShape base{.backend = "qemu",
                     .accel = "tcg",
                     .memory_mib = 512,
                     .vcpus = 1,
                     .overlay = "256M",
                     .rootfs = false};
  const std::string key = SnapshotKey(base, "qemu:1");
  EXPECT_EQ(key.rfind("qemu-", 0), 0u);
  EXPECT_EQ(SnapshotKey(base, "qemu:1"), key);
  std::vector<VmShape> others(6, base);
  others[0].accel = "kvm";
  others[1].memory_mib = 256;
  others[2].vcpus = 2;
  others[3].overlay = "1G";
  others[4].rootfs = true;
  others[5].backend = "firecracker";
  for (const auto& o : others) EXPECT_NE(SnapshotKey(o, "qemu:1"), key);
  EXPECT_NE(SnapshotKey(base, "qemu:2"), key);
}

// Under TCG the guest kernel is told the host's TSC rate instead of calibrating it against the
// emulated PIT (which fails on a busy host and hangs the guest before init).
TEST(KernelCommandLine, TcgGetsTheHostTscRate) {
  VmSpec s = Spec();
  s.tsc_khz = 2600000;
  const std::string line = KernelCommandLine(s, "reboot=t");
  EXPECT_EQ(line.rfind("console=ttyS0 ", 0), 0u);
  EXPECT_NE(line.find(" quiet"), std::string::npos);
  EXPECT_NE(line.find(" tsc_early_khz=2600000 "), std::string::npos);
  EXPECT_NE(line.find(" airlock.gw=100.96.0.1"), std::string::npos);
  EXPECT_EQ(After(QemuArgv(s, "/a.sock"), "-append"), line);

  s.accel = "kvm";  // KVM guests have kvmclock
  EXPECT_EQ(KernelCommandLine(s, "reboot=t").find("tsc_early_khz"), std::string::npos);
  s.accel = "tcg";
  s.tsc_khz = 0;  // not invariant: the guest calibrates
  EXPECT_EQ(KernelCommandLine(s, "reboot=t").find("tsc_early_khz"), std::string::npos);
  s.verbose_console = true;
  EXPECT_EQ(KernelCommandLine(s, "reboot=t").find("quiet"), std::string::npos);
}

TEST(HostTsc, InvariantOnlyWithBothFlags) {
  EXPECT_TRUE(TscIsInvariant("processor\t: 0\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n"));
  EXPECT_FALSE(TscIsInvariant("flags\t\t: fpu tsc constant_tsc\n"));
  EXPECT_FALSE(TscIsInvariant("flags\t\t: fpu tsc nonstop_tsc\n"));
  EXPECT_FALSE(TscIsInvariant(""));
  // This host: a rate where the TSC is invariant, none otherwise.
  if (TscIsInvariant(ReadFile("/proc/cpuinfo"))) {
    EXPECT_GT(HostTscKhz(), 100'000);     // above 100 MHz
    EXPECT_LT(HostTscKhz(), 10'000'000);  // below 10 GHz
  } else {
    EXPECT_EQ(HostTscKhz(), 0);
  }
}

// The documented --config-file format: boot-source, machine-config, network-interfaces,
// vsock, drives; paths relative to the jail root.
TEST(FirecrackerConfig, DocumentedFormat) {
  VmSpec s = Spec();
  s.rootfs = "/img/rootfs.ext4";
  auto c = FirecrackerConfig(s);
  EXPECT_EQ(c["boot-source"]["kernel_image_path"], "vmlinux");
  EXPECT_EQ(c["boot-source"]["initrd_path"], "initrd.img");
  const std::string args = c["boot-source"]["boot_args"];
  EXPECT_NE(args.find("console=ttyS0"), std::string::npos);
  EXPECT_NE(args.find("airlock.transport=vsock"), std::string::npos);
  EXPECT_NE(args.find("airlock.gw=100.96.0.1"), std::string::npos);
  EXPECT_EQ(c["machine-config"]["vcpu_count"], 2);
  EXPECT_EQ(c["machine-config"]["mem_size_mib"], 384);
  EXPECT_EQ(c["machine-config"]["smt"], false);
  ASSERT_EQ(c["network-interfaces"].size(), 1u);
  EXPECT_EQ(c["network-interfaces"][0]["iface_id"], "eth0");
  EXPECT_EQ(c["network-interfaces"][0]["host_dev_name"], "alvm-0a1b2c3d");
  EXPECT_EQ(c["network-interfaces"][0]["guest_mac"], "52:41:0a:1b:2c:3d");
  EXPECT_EQ(c["vsock"]["guest_cid"], 3);
  EXPECT_EQ(c["vsock"]["uds_path"], "vsock.sock");
  ASSERT_EQ(c["drives"].size(), 1u);
  EXPECT_EQ(c["drives"][0]["drive_id"], "rootfs");
  EXPECT_EQ(c["drives"][0]["path_on_host"], "rootfs.ext4");
  EXPECT_EQ(c["drives"][0]["is_root_device"], false);  // the initramfs mounts it
  EXPECT_EQ(c["drives"][0]["is_read_only"], true);
  // Nothing outside the documented top-level keys.
  for (const auto& [key, value] : c.items()) {
    EXPECT_TRUE(key == "boot-source" || key == "machine-config" || key == "network-interfaces" ||
                key == "vsock" || key == "drives")
        << key;
  }
}

// Firecracker's snapshot calls, field by field as its API documents them (swagger
// SnapshotCreateParams, SnapshotLoadParams with a File memory backend and network_overrides).
TEST(FirecrackerApi, SnapshotCallsHaveTheDocumentedFields) {
  const FirecrackerCall pause = FirecrackerPause();
  EXPECT_EQ(pause.method, "PATCH");
  EXPECT_EQ(pause.path, "/vm");
  EXPECT_EQ(pause.body, nlohmann::json({{"state", "Paused"}}));

  const FirecrackerCall create = FirecrackerSnapshotCreate("/s/state", "/s/memory");
  EXPECT_EQ(create.method, "PUT");
  EXPECT_EQ(create.path, "/snapshot/create");
  EXPECT_EQ(create.body, nlohmann::json({{"snapshot_type", "Full"},
                                         {"snapshot_path", "/s/state"},
                                         {"mem_file_path", "/s/memory"}}));

  const FirecrackerCall load = FirecrackerSnapshotLoad("/s/state", "/s/memory", "alvm-0a1b2c3d");
  EXPECT_EQ(load.method, "PUT");
  EXPECT_EQ(load.path, "/snapshot/load");
  EXPECT_EQ(load.body["snapshot_path"], "/s/state");
  EXPECT_EQ(load.body["mem_backend"],
            nlohmann::json({{"backend_type", "File"}, {"backend_path", "/s/memory"}}));
  EXPECT_EQ(load.body["resume_vm"], true);
  EXPECT_EQ(load.body["network_overrides"],
            nlohmann::json::array({{{"iface_id", "eth0"}, {"host_dev_name", "alvm-0a1b2c3d"}}}));
  EXPECT_FALSE(load.body.contains("mem_file_path")) << "deprecated, and exclusive with mem_backend";
  EXPECT_EQ(load.body.size(), 4u);
}

// Save against a stand-in API socket: a pause, then a full snapshot whose memory goes to the
// template's shared file or, for standby, beside the state; Firecracker's refusal is reported.
TEST(FirecrackerApi, SavePausesThenWritesAFullSnapshot) {
  struct Case {
    bool shared;
    std::string create_answer;
    std::string memory;  // expected mem_file_path
    std::string error;   // "" for success
  } cases[] = {
      {true, "HTTP/1.1 204 No Content\r\n\r\n", "/snap/memory", ""},
      {false, "HTTP/1.1 204 No Content\r\n\r\n", "/standby/vm.state.memory", ""},
      {false,
       "HTTP/1.1 400 Bad Request\r\nContent-Length: 38\r\n\r\n"
       "{\"fault_message\":\"No space on device\"}",
       "/standby/vm.state.memory", "failed (400): No space on device"},
  };
  for (const auto& c : cases) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("fc-save-" + std::to_string(getpid()) + (c.shared ? "-s" : "-p"));
    std::filesystem::create_directories(dir / "root");
    std::vector<std::string> requests;
    testing::StandInServer api(2, [&](int fd, int i) {
      requests.push_back(testing::ReadHttpRequest(fd));
      const std::string answer =
          i == 0 ? std::string("HTTP/1.1 204 No Content\r\n\r\n") : c.create_answer;
      (void)!::write(fd, answer.data(), answer.size());
    });
    std::filesystem::create_symlink(api.path(), dir / "root/api.sock");
    VmSpec spec = Spec();
    spec.dir = dir.string();
    spec.memory_file = "/snap/memory";
    spec.memory_shared = c.shared;
    FirecrackerVmm vmm;
    Status s = vmm.Save(spec, c.shared ? "/snap/state" : "/standby/vm.state");
    if (c.error.empty()) {
      EXPECT_TRUE(s.ok()) << s.message();
    } else {
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find(c.error), std::string::npos) << s.message();
    }
    std::filesystem::remove_all(dir);
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_TRUE(requests[0].starts_with("PATCH /vm HTTP/1.1\r\n")) << requests[0];
    EXPECT_TRUE(requests[0].ends_with(R"({"state":"Paused"})")) << requests[0];
    EXPECT_TRUE(requests[1].starts_with("PUT /snapshot/create HTTP/1.1\r\n")) << requests[1];
    auto body = nlohmann::json::parse(requests[1].substr(requests[1].find("\r\n\r\n") + 4));
    EXPECT_EQ(body["mem_file_path"], c.memory);
    EXPECT_EQ(body["snapshot_path"], c.shared ? "/snap/state" : "/standby/vm.state");
  }
}

// debootstrap's mirror comes from APT's own sources, never from a comment.
TEST(MirrorFromSources, Deb822AndOneLineFormats) {
  EXPECT_EQ(MirrorFromSources("Types: deb\n# http://snapshot.example/archive/debian/2025\n"
                              "URIs: http://deb.debian.org/debian\nSuites: bookworm\n"),
            "http://deb.debian.org/debian");
  EXPECT_EQ(MirrorFromSources("deb http://security.debian.org/debian-security bookworm-security "
                              "main\ndeb [signed-by=/k.gpg] http://mirror.example/debian "
                              "bookworm main\n"),
            "http://mirror.example/debian");
  EXPECT_EQ(MirrorFromSources("#deb http://old.example/debian bookworm main\n"), "");
  EXPECT_EQ(MirrorFromSources(""), "");
}

TEST(KernelImage, FindsCompressedPayloadsInFileOrder) {
  std::string image(100, '\0');
  image += std::string("\x02\x21\x4c\x18", 4) + "lz4data";
  image += std::string("\x1f\x8b\x08", 3) + "gz";
  auto found = FindPayloads(image);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].format, "lz4");
  EXPECT_EQ(found[0].offset, 100u);
  EXPECT_EQ(found[0].decompress, "lz4 -dc");
  EXPECT_EQ(found[1].format, "gzip");
  EXPECT_TRUE(
      IsElf(std::string("\x7f"
                        "ELF\x02",
                        5)));
  EXPECT_FALSE(IsElf("MZ"));
}

TEST(KernelImage, ExtractsAnElfFromAGzipPayload) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kimg-" + std::to_string(getpid()));
  fs::create_directories(dir);
  // A fake bzImage: a setup header, then a gzip'd "ELF" of 2 MiB, then trailing bytes.
  ASSERT_EQ(std::system(("cd " + dir.string() +
                         " && { printf '\\177ELF'; head -c 2097152 /dev/zero; } > elf"
                         " && gzip -c elf > elf.gz && { head -c 4096 /dev/zero; cat elf.gz;"
                         " printf trailer; } > bzImage")
                            .c_str()),
            0);
  ASSERT_TRUE(ExtractVmlinux((dir / "bzImage").string(), (dir / "vmlinux").string()).ok());
  EXPECT_EQ(fs::file_size(dir / "vmlinux"), 2097156u);
  auto bad = ExtractVmlinux((dir / "elf.gz").string() + ".missing", (dir / "x").string());
  EXPECT_FALSE(bad.ok());
  fs::remove_all(dir);
}

TEST(Units, SizesAndDurations) {
  EXPECT_EQ(ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  EXPECT_FALSE(ParseSize("lots"));
  EXPECT_FALSE(ParseSize("12X"));
  EXPECT_FALSE(ParseSize("99999999999999999999999M"));
  EXPECT_EQ(ParseDuration("30s"), std::chrono::seconds(30));
  EXPECT_EQ(ParseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(ParseDuration("2h"), std::chrono::hours(2));
  EXPECT_EQ(ParseDuration("7"), std::chrono::seconds(7));
  EXPECT_FALSE(ParseDuration("-1s"));
  EXPECT_FALSE(ParseDuration("soon"));
}

TEST(VmRecord, RoundTripsAndNamesADeadOwner) {
  namespace fs = std::filesystem;
  VmRecord r;
  r.id = "vm-12345678";
  r.dir = (fs::temp_directory_path() / ("rec-" + std::to_string(getpid()))).string();
  fs::create_directories(r.dir);
  r.tap = "alvm-12345678";
  r.cgroups = {"/sys/fs/cgroup/airlock/vm-12345678"};
  r.owner_pid = getpid();
  r.owner_start = ProcessStartTime(getpid()).value();
  ASSERT_TRUE(r.Save().ok());
  auto back = VmRecord::Load(r.file());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->tap, r.tap);
  EXPECT_EQ(back->cgroups, r.cgroups);
  EXPECT_TRUE(back->OwnerAlive());
  VmRecord recycled = *back;
  recycled.owner_start += 1;  // same pid, another process: not the owner
  EXPECT_FALSE(recycled.OwnerAlive());
  fs::remove_all(r.dir);
}

TEST(CaTrust, TheFiveVariablesPointAtTheBundleUnlessTheUserSetThem) {
  std::map<std::string, std::string> env = {{"SSL_CERT_FILE", "/mine.pem"}, {"OTHER", "x"}};
  AddCaTrustEnv("/etc/airlock/ca.crt", &env);
  EXPECT_EQ(env, (std::map<std::string, std::string>{{"SSL_CERT_FILE", "/mine.pem"},
                                                     {"REQUESTS_CA_BUNDLE", "/etc/airlock/ca.crt"},
                                                     {"NODE_EXTRA_CA_CERTS", "/etc/airlock/ca.crt"},
                                                     {"GIT_SSL_CAINFO", "/etc/airlock/ca.crt"},
                                                     {"CURL_CA_BUNDLE", "/etc/airlock/ca.crt"},
                                                     {"OTHER", "x"}}));
}

TEST(CaTrust, BundleHasEachPartOnceEachOnItsOwnLines) {
  EXPECT_EQ(CaBundle({"ROOTS\n", "BAKED", "\n\nGATEWAY\n\n"}), "ROOTS\nBAKED\nGATEWAY\n");
  EXPECT_EQ(CaBundle({"", "GATEWAY\n"}), "GATEWAY\n");  // no system roots on this host
  EXPECT_EQ(CaBundle({"ROOTS", "SAME CA\n", "SAME CA"}), "ROOTS\nSAME CA\n");
  EXPECT_EQ(CaBundle({}), "");
}

TEST(NetnsEnvironment, ProxySessionCaThenTheUsersVariablesThenPlaceholders) {
  auto env =
      NetnsEnvironment("http://100.96.0.1:3128", "s-1", "/run/airlock/netns/x/ca.crt",
                       {{"GITHUB_TOKEN", "ghp_placeholder"}, {"GIT_TOKEN", "ghp_other"}},
                       {{"CURL_CA_BUNDLE", "/mine.pem"}, {"EXTRA", "yes"}, {"GIT_TOKEN", "mine"}});
  auto has = [&](const std::string& kv) { return std::count(env.begin(), env.end(), kv) == 1; };
  EXPECT_TRUE(has("HTTPS_PROXY=http://100.96.0.1:3128"));
  EXPECT_TRUE(has("no_proxy=localhost,127.0.0.1"));
  EXPECT_TRUE(has("AIRLOCK_SESSION=s-1"));
  for (const char* v :
       {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"}) {
    EXPECT_TRUE(has(std::string(v) + "=/run/airlock/netns/x/ca.crt")) << v;
  }
  EXPECT_TRUE(has("CURL_CA_BUNDLE=/mine.pem"));
  EXPECT_TRUE(has("EXTRA=yes"));
  EXPECT_TRUE(has("GITHUB_TOKEN=ghp_placeholder"));
  EXPECT_TRUE(has("GIT_TOKEN=ghp_other"));  // a placeholder wins, as in a microVM
  EXPECT_EQ(env.size(), 15u);               // each variable once: `env` would let a later one win
  // Without a CA (an older gateway): none of the five.
  env = NetnsEnvironment("http://g:3128", "s-2", "", {}, {});
  EXPECT_TRUE(std::none_of(env.begin(), env.end(), [](const std::string& kv) {
    return kv.find("CA") != std::string::npos || kv.find("SSL") != std::string::npos;
  }));
}

// A control socket that answers one request with `response` and records what it was asked.
class StandInGateway {
 public:
  explicit StandInGateway(std::string response)
      : server_(1, [this, response = std::move(response)](int fd, int) {
          request_ = testing::ReadHttpRequest(fd);
          (void)!::write(fd, response.data(), response.size());
        }) {}
  const std::string& path() const { return server_.path(); }
  // Valid once the client has had its answer.
  const std::string& request() const { return request_; }

 private:
  std::string request_;
  testing::StandInServer server_;
};

std::string HttpAnswer(const std::string& status, const std::string& body) {
  return "HTTP/1.1 " + status +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

TEST(ControlClient, GetsTheGatewaysCaCertificate) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  StandInGateway g(HttpAnswer("200 OK", nlohmann::json{{"certificate", pem}}.dump()));
  auto ca = control::ControlClient(g.path()).GetCaCertificate();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  EXPECT_EQ(*ca, pem);
  EXPECT_TRUE(g.request().starts_with("GET /v1/ca HTTP/1.1\r\n")) << g.request();
}

TEST(ControlClient, AnOlderGatewayHasNoCaAndSaysSoOnce) {
  StandInGateway g(HttpAnswer("404 Not Found", R"({"error":"no such endpoint"})"));
  control::ControlClient control(g.path());
  std::ostringstream log;
  auto ca = FetchGatewayCa(control, log);
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  EXPECT_EQ(*ca, "");
  const std::string said = log.str();
  EXPECT_NE(said.find("no CA certificate"), std::string::npos) << said;
  EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1);
}

TEST(ControlClient, AnythingElseIsAnError) {
  struct Case {
    std::string answer, error;
  };
  const Case cases[] = {
      {HttpAnswer("500 Internal Server Error", R"({"error":"CA key unreadable"})"),
       "GET /v1/ca: 500 CA key unreadable"},
      {HttpAnswer("200 OK", R"({"certificate":"hello"})"), "not a PEM certificate"},
      {HttpAnswer("200 OK", R"({"certificate":42})"), "no \"certificate\" string"},
      {HttpAnswer("200 OK", "not json"), "no \"certificate\" string"},
      {"garbage", "unreadable answer"},
  };
  for (const auto& c : cases) {
    StandInGateway g(c.answer);
    std::ostringstream log;
    control::ControlClient control(g.path());
    auto ca = FetchGatewayCa(control, log);
    ASSERT_FALSE(ca.ok()) << c.answer;
    EXPECT_NE(ca.status().message().find(c.error), std::string::npos) << ca.status().message();
    EXPECT_EQ(log.str(), "");
  }
  auto gone = control::ControlClient("/nonexistent/control.sock").GetCaCertificate();
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("is airlock-gateway running"), std::string::npos);
}

}  // namespace
}  // namespace airlock::vmlaunch
