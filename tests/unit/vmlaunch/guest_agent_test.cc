// The guest agent and the host's agent client over a socketpair, with real child processes:
// the execution contract (argv, env, cwd, stdin, streamed output, exit codes, signals, timeouts,
// cancel), files, the gateway's CA bundle put into a guest, and malformed requests. No VM: the
// agent code is the same that runs as PID 1.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "gateway/base/base64.h"
#include "vmlaunch/ca_trust.h"
#include "vmlaunch/guest/agent.h"
#include "vmlaunch/guest/exec_runner.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/agent_client.h"

namespace airlock::vmlaunch {
namespace {

using std::chrono::milliseconds;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    guest_fd_ = sv[1];
    client_ = std::make_unique<AgentClient>(sv[0]);
    dir_ = std::filesystem::temp_directory_path() / ("agent-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "env") << "BASE=from-init\n";
    thread_ = std::thread([this] {
      // The identity is recorded, not applied: this is the host.
      Agent agent({.env_file = dir_ / "env",
                   .profile = dir_ / "profile.sh",
                   .jobs_dir = dir_ / "jobs",
                   .system_roots = dir_ / "guest" / std::string(kSystemRoots).substr(1),
                   .ca_bundle = dir_ / "guest" / std::string(kGuestCaPath).substr(1),
                   .apply_identity =
                       [this](const GuestIdentity& id) {
                         identities_.push_back(id);
                         events_.push_back("identity");
                         return Status::Ok();
                       },
                   .reseed =
                       [this](const std::string& seed) {
                         events_.push_back("reseed " + seed);
                         return Status::Ok();
                       }});
      LineChannel channel(guest_fd_);
      agent.Serve(channel);
      ::close(guest_fd_);
    });
    ASSERT_TRUE(client_->WaitReady(milliseconds(5000)).ok());
  }
  void TearDown() override {
    (void)client_->Shutdown();
    thread_.join();
    client_.reset();
    std::filesystem::remove_all(dir_);
  }
  ExecResult Exec(ExecSpec spec, std::string* streamed = nullptr) {
    auto r = client_->Exec(spec, [&](bool, std::string_view d) {
      if (streamed) streamed->append(d);
    });
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : ExecResult{};
  }

  int guest_fd_ = -1;
  std::vector<GuestIdentity> identities_;  // (written by the agent's thread before it replies)
  std::vector<std::string> events_;        // reseeds and identities, in order (likewise)
  std::unique_ptr<AgentClient> client_;
  std::filesystem::path dir_;
  std::thread thread_;
};

TEST_F(AgentTest, StdoutStderrExitCodeAndStdin) {
  std::string streamed;
  auto r = Exec({.argv = {"sh", "-c", "cat; echo err >&2; exit 3"}, .stdin_data = "in"}, &streamed);
  EXPECT_EQ(r.stdout_data, "in");
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_EQ(streamed, "inerr\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(r.timed_out);
}

// A command that floods its output: the host keeps at most kMaxCollected per stream and says
// so, while the live stream still gets every byte.
TEST_F(AgentTest, CollectedOutputIsCappedAndMarked) {
  std::string streamed;
  const size_t total = ExecResult::kMaxCollected + (1u << 20);
  auto r = Exec({.argv = {"head", "-c", std::to_string(total), "/dev/zero"}}, &streamed);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(streamed.size(), total);
  EXPECT_EQ(r.stdout_data.size(), ExecResult::kMaxCollected);
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_FALSE(r.stderr_truncated);
}

TEST_F(AgentTest, EnvironmentLayersAndWorkingDirectory) {
  ASSERT_TRUE(client_->Configure({{"SESSION", "s-1"}, {"BASE", "overridden"}}).ok());
  auto r = Exec({.argv = {"sh", "-c", "echo $BASE $SESSION $EXTRA; pwd"},
                 .env = {{"EXTRA", "x"}},
                 .cwd = dir_.string()});
  EXPECT_EQ(r.stdout_data, "overridden s-1 x\n" + dir_.string() + "\n");
  std::ifstream profile(dir_ / "profile.sh");
  std::string text((std::istreambuf_iterator<char>(profile)), {});
  EXPECT_NE(text.find("export SESSION='s-1'"), std::string::npos) << text;
}

// A restored VM takes on its session's identity; its proxy variables then reach every exec.
TEST_F(AgentTest, IdentityIsAppliedAndItsProxyReachesEveryExec) {
  ASSERT_TRUE(client_
                  ->Identity({{"hostname", "vm-1234abcd"},
                              {"address", "100.96.0.2/30"},
                              {"gateway", "100.96.0.1"},
                              {"proxy", "http://100.96.0.1:3128"},
                              {"mac", "52:41:12:34:ab:cd"}})
                  .ok());
  ASSERT_EQ(identities_.size(), 1u);
  const GuestIdentity& id = identities_[0];
  EXPECT_EQ(id.hostname, "vm-1234abcd");
  EXPECT_EQ(id.address, "100.96.0.2/30");
  EXPECT_EQ(id.gateway, "100.96.0.1");
  EXPECT_EQ(id.proxy, "http://100.96.0.1:3128");
  EXPECT_EQ(id.mac, "52:41:12:34:ab:cd");
  auto r = Exec({.argv = {"sh", "-c", "echo $HTTP_PROXY $https_proxy $NO_PROXY $BASE"}});
  EXPECT_EQ(r.stdout_data,
            "http://100.96.0.1:3128 http://100.96.0.1:3128 localhost,127.0.0.1 from-init\n");
  // Only the clock and entropy (after a resume): no identity is applied.
  ASSERT_TRUE(client_->Identity({{"time_unix_ns", nlohmann::json()}}).ok());
  EXPECT_EQ(identities_.size(), 1u);
}

TEST(GuestIdentity, FromTheKernelCommandLine) {
  auto id = IdentityFromCommandLine(
      "console=ttyS0 quiet airlock.ip=100.96.0.6/30 airlock.gw=100.96.0.5 "
      "airlock.proxy=http://100.96.0.5:3128 airlock.overlay=256M airlock.hostname=vm-0a1b2c3d");
  EXPECT_EQ(id.address, "100.96.0.6/30");
  EXPECT_EQ(id.gateway, "100.96.0.5");
  EXPECT_EQ(id.proxy, "http://100.96.0.5:3128");
  EXPECT_EQ(id.hostname, "vm-0a1b2c3d");
  EXPECT_EQ(id.mac, "");
  // A snapshot's template boots with none of them.
  auto none = IdentityFromCommandLine("console=ttyS0 airlock.overlay=256M");
  EXPECT_EQ(none.address + none.hostname + none.proxy, "");
  EXPECT_TRUE(ProxyEnvironment("").empty());
}

// A restored VM's seed is mixed into its random pool, whole, before it takes on the rest of its
// identity (whose set-up may already draw random bytes).
TEST_F(AgentTest, IdentitySeedIsMixedInFirst) {
  const std::string seed(64, '\x5a');
  ASSERT_TRUE(client_
                  ->Identity({{"seed", Base64Encode(seed)},
                              {"hostname", "vm-1234abcd"},
                              {"address", "100.96.0.2/30"},
                              {"gateway", "100.96.0.1"}})
                  .ok());
  EXPECT_EQ(events_, (std::vector<std::string>{"reseed " + seed, "identity"}));
}

TEST_F(AgentTest, IdentityRejectsABadSeed) {
  auto s = client_->Identity({{"seed", "c2hvcnQ="}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("seed must be 32 to 512 bytes"), std::string::npos) << s.message();
  EXPECT_TRUE(client_->health().ok());  // an error reply, not a broken protocol
}

// Three execs at once: each waits until all three have started, so they can only finish if the
// agent runs them side by side (one at a time, the first would time out). Their replies
// interleave and each reaches its own request.
TEST_F(AgentTest, ExecsRunSideBySide) {
  std::map<int64_t, ExecResult> results;
  std::vector<int64_t> ids;
  for (const char* name : {"a", "b", "c"}) {
    const std::string d = dir_.string();
    ExecSpec spec{.argv = {"sh", "-c",
                           "touch " + d + "/" + name + "; until [ -e " + d + "/a ] && [ -e " + d +
                               "/b ] && [ -e " + d + "/c ]; do sleep 0.02; done; echo " + name},
                  .timeout = std::chrono::seconds(20)};
    auto id = client_->Start(
        AgentClient::ExecRequestJson(spec),
        [&results, &ids](const GuestMessage& m) {
          return AgentClient::ApplyExecReply(m, &results[*m.Int("id")], {});
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  while (client_->InFlight(ids[0]) || client_->InFlight(ids[1]) || client_->InFlight(ids[2])) {
    ASSERT_TRUE(client_->Dispatch(200).ok()) << client_->health().message();
  }
  EXPECT_EQ(results[ids[0]].stdout_data, "a\n");
  EXPECT_EQ(results[ids[1]].stdout_data, "b\n");
  EXPECT_EQ(results[ids[2]].stdout_data, "c\n");
  for (int64_t id : ids) EXPECT_FALSE(results[id].timed_out);
}

// Idle says whether the agent owes a final reply (a VM is suspended only then), and a client
// that takes over (after a resume) numbers its requests on from the one before it.
TEST_F(AgentTest, IdleUntilAReplyIsOwedAndIdsGoOnAcrossClients) {
  EXPECT_TRUE(client_->Idle());
  const std::string flag = (dir_ / "go").string();
  ExecSpec spec{.argv = {"sh", "-c", "until [ -e " + flag + " ]; do sleep 0.02; done"},
                .timeout = std::chrono::seconds(20)};
  auto id = client_->Start(
      AgentClient::ExecRequestJson(spec), [](const GuestMessage&) { return Status::Ok(); },
      std::chrono::seconds(30));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(client_->Dispatch(100).ok());
  EXPECT_FALSE(client_->Idle()) << "the exec is still running";
  std::ofstream(flag) << "";
  while (client_->InFlight(*id)) ASSERT_TRUE(client_->Dispatch(200).ok());
  EXPECT_TRUE(client_->Idle());
  EXPECT_EQ(client_->next_id(), *id + 1);
  // A second client on a channel of its own goes on from there: its first request's id is the
  // next one, as the guest sees it.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  AgentClient next(sv[0], client_->next_id());
  auto sent = next.Start(
      {{"op", "ping"}}, [](const GuestMessage&) { return Status::Ok(); }, std::chrono::seconds(5));
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(*sent, *id + 1);
  LineChannel guest(sv[1]);
  auto request = guest.Receive(5000);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ((*request)["id"], *id + 1);
  ::close(sv[1]);
}

// A detached job answers at once, outlives its exec, writes its output to a file, and can be
// listed, waited for and killed.
TEST_F(AgentTest, DetachedJobsOutliveTheirExec) {
  auto call = [&](nlohmann::json request) {
    GuestMessage reply = GuestMessage::From(nlohmann::json::object()).value();
    EXPECT_TRUE(client_
                    ->Relay(
                        std::move(request),
                        [&](const GuestMessage& m) {
                          reply = m;
                          return Status::Ok();
                        },
                        {}, milliseconds(5000))
                    .ok());
    return reply;
  };
  auto start = [&](const std::string& script) {
    return call({{"op", "exec"}, {"argv", {"sh", "-c", script}}, {"detach", true}});
  };
  auto sleeper = start("echo started; exec sleep 600");
  ASSERT_EQ(sleeper.String("job"), "job-1");
  auto quick = start("echo done; exit 3");
  ASSERT_EQ(quick.String("job"), "job-2");
  auto waited = call({{"op", "wait"}, {"job", "job-2"}});
  EXPECT_EQ(waited.Bool("running"), false);
  EXPECT_EQ(waited.Int("exit_code"), 3);
  EXPECT_EQ(ReadFile(std::string(*quick.String("output"))), "done\n");
  // The sleeper still runs after its exec answered, and after other execs.
  EXPECT_EQ(Exec({.argv = {"true"}}).exit_code, 0);
  auto listed = call({{"op", "jobs"}});
  const auto& jobs = listed.json()["jobs"];
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]["running"], true);
  EXPECT_EQ(::kill(static_cast<pid_t>(jobs[0]["pid"].get<int>()), 0), 0);
  EXPECT_EQ(call({{"op", "kill"}, {"job", "job-1"}}).Bool("ok"), true);
  auto killed = call({{"op", "wait"}, {"job", "job-1"}, {"timeout_ms", 10000}});
  EXPECT_EQ(killed.Bool("running"), false);
  EXPECT_EQ(killed.Int("signal"), SIGKILL);
  EXPECT_NE(call({{"op", "wait"}, {"job", "job-9"}}).String("error"), std::nullopt);
}

TEST_F(AgentTest, TimeoutKillsTheWholeGroup) {
  auto r = Exec({.argv = {"sh", "-c", "sleep 30 & sleep 30"}, .timeout = milliseconds(300)});
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 124);
  EXPECT_EQ(r.signal, 9);
  EXPECT_LT(r.duration_ms, 5000);
}

TEST_F(AgentTest, KilledBySignal) {
  auto r = Exec({.argv = {"sh", "-c", "kill -TERM $$"}});
  EXPECT_EQ(r.signal, 15);
  EXPECT_EQ(r.exit_code, 128 + 15);
}

TEST_F(AgentTest, CommandThatCannotStart) {
  auto r = Exec({.argv = {"/no/such/binary"}});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.error.find("No such file"), std::string::npos) << r.error;
  r = Exec({.argv = {"true"}, .cwd = "/no/such/dir"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.error.find("cannot enter /no/such/dir"), std::string::npos) << r.error;
}

TEST_F(AgentTest, CancelKillsTheCommand) {
  int polls = 0;
  auto r = client_->Exec({.argv = {"sleep", "30"}}, {}, [&] { return ++polls > 2; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->signal, 9);
  EXPECT_FALSE(r->timed_out);
}

TEST_F(AgentTest, PutAndGetFiles) {
  std::string binary("\x00\x01\xff payload", 11);
  const std::string path = (dir_ / "sub" / "file.bin").string();
  ASSERT_TRUE(client_->Put(path, binary, 0600).ok());
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto got = client_->Get(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, binary);
  auto missing = client_->Get((dir_ / "missing").string());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no such file"), std::string::npos);
  EXPECT_FALSE(client_->Put("relative/path", "x", 0644).ok());
}

// A guest with its own roots and a CA baked into its image keeps both, then the gateway's CA;
// only the gateway's CA crosses the channel. A second bundle (another gateway's CA) replaces the
// first: nothing piles up.
TEST_F(AgentTest, GatewayCaBundleKeepsTheGuestsRootsAndTheImagesCa) {
  const std::string root = (dir_ / "guest").string();
  std::filesystem::create_directories(root + "/etc/ssl/certs");
  std::ofstream(root + std::string(kSystemRoots)) << "GUEST ROOTS\n";
  ASSERT_TRUE(client_->Put(root + std::string(kGuestCaPath), "BAKED CA\n", 0644).ok());
  ASSERT_TRUE(InstallGuestCa(*client_, "GATEWAY CA\n").ok());
  auto bundle = client_->Get(root + std::string(kGuestCaPath));
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(*bundle, "GUEST ROOTS\nBAKED CA\nGATEWAY CA\n");
  ASSERT_TRUE(InstallGuestCa(*client_, "OTHER GATEWAY CA\n").ok());
  bundle = client_->Get(root + std::string(kGuestCaPath));
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(*bundle, "GUEST ROOTS\nBAKED CA\nOTHER GATEWAY CA\n");
  // Not PEM text: refused, and the agent carries on.
  ASSERT_TRUE(::write(client_->fd(), "{\"id\":77,\"op\":\"trust\",\"ca\":5}\n", 30) == 30);
  LineChannel raw(client_->fd());
  auto reply = raw.Receive(5000);
  ASSERT_TRUE(reply.ok());
  EXPECT_NE((*reply)["error"].get<std::string>().find("PEM"), std::string::npos);
}

// No roots and no baked CA in the guest (a bare initramfs): the guest writes nothing until the
// host sends its own roots.
TEST_F(AgentTest, AGuestWithoutRootsGetsTheHosts) {
  const std::string bundle_path = (dir_ / "guest").string() + std::string(kGuestCaPath);
  auto had_roots = client_->Trust("GATEWAY CA\n", std::nullopt);
  ASSERT_TRUE(had_roots.ok());
  EXPECT_FALSE(*had_roots);
  EXPECT_FALSE(client_->Get(bundle_path).ok()) << "nothing written yet";
  ASSERT_TRUE(InstallGuestCa(*client_, "GATEWAY CA\n").ok());
  auto bundle = client_->Get(bundle_path);
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(*bundle, CaBundle({ReadFile(std::string(kSystemRoots)), "GATEWAY CA"}));
  EXPECT_TRUE(bundle->ends_with("GATEWAY CA\n"));
}

TEST_F(AgentTest, MalformedRequestsGetErrorsAndTheAgentCarriesOn) {
  ASSERT_EQ(::write(client_->fd(), "not json\n", 9), 9);
  int fd = client_->fd();
  LineChannel raw(fd);
  auto reply = raw.Receive(5000);
  ASSERT_TRUE(reply.ok());
  EXPECT_TRUE(reply->contains("error"));
  ASSERT_TRUE(raw.Send({{"id", 9}, {"op", "exec"}, {"argv", "not a list"}}).ok());
  reply = raw.Receive(5000);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ((*reply)["id"], 9);
  EXPECT_NE((*reply)["error"].get<std::string>().find("argv"), std::string::npos);
  ASSERT_TRUE(raw.Send({{"id", 10}, {"op", "format-disk"}}).ok());
  reply = raw.Receive(5000);
  EXPECT_NE((*reply)["error"].get<std::string>().find("unknown op"), std::string::npos);
  EXPECT_EQ(Exec({.argv = {"true"}}).exit_code, 0);
}

}  // namespace
}  // namespace airlock::vmlaunch
