// A hostile guest agent against the host's agent client and the monitor client, over a
// socketpair (and a unix socket for the monitor): wrong types for every field the host reads,
// lines that are not one JSON object, invalid UTF-8, deep nesting, an oversize line, floods of
// replies to no request, a restart, and silence. Each ends in a clear error (never an
// exception), the client stays broken afterwards, and no descriptor is left open.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "vmlaunch/guest/line_channel.h"
#include "vmlaunch/vm/agent_client.h"
#include "vmlaunch/vm/monitor.h"

namespace airlock::vmlaunch {
namespace {

using std::chrono::milliseconds;

size_t OpenFds() {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                           std::filesystem::directory_iterator()));
}

// Writes all of `bytes` to `fd` unless the other end hangs up; false if it did.
bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The host's client and the guest's end of its channel, as a VMM connects them.
struct Channel {
  Channel() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client = std::make_unique<AgentClient>(sv[0]);
    guest = sv[1];
  }
  ~Channel() {
    client.reset();  // the host hangs up: a guest still writing gets EPIPE
    if (writer.joinable()) writer.join();
    ::close(guest);
  }
  void Say(std::string_view bytes) { EXPECT_TRUE(WriteAll(guest, bytes)); }
  // The guest writes `chunk` over and over until the host hangs up.
  void Flood(std::string chunk) {
    writer = std::thread([this, chunk] {
      while (WriteAll(guest, chunk)) {
      }
    });
  }
  // An exec as AgentClient::Exec runs it, with a deadline a broken check would run into.
  Status Exec(ExecResult* result = nullptr) {
    ExecResult scratch;
    return client->Relay(
        AgentClient::ExecRequestJson({.argv = {"true"}}),
        [&](const GuestMessage& reply) {
          return AgentClient::ApplyExecReply(reply, result ? result : &scratch, {});
        },
        {}, milliseconds(5000));
  }

  std::unique_ptr<AgentClient> client;
  int guest = -1;
  std::thread writer;
};

class HostileGuestTest : public ::testing::Test {
 protected:
  void SetUp() override { fds_ = OpenFds(); }
  void TearDown() override { EXPECT_EQ(OpenFds(), fds_) << "a descriptor was left open"; }

  size_t fds_ = 0;
};

// The error names what was wrong; every later call fails at once with the same error.
void ExpectBroken(Channel& c, const Status& s, const std::string& what) {
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
  EXPECT_EQ(c.client->health().message(), s.message());
  const auto start = std::chrono::steady_clock::now();
  Status again = c.client->Shutdown();
  EXPECT_EQ(again.message(), s.message());
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(100)) << "it asked again";
}

struct HostileReply {
  std::string line;   // the guest's reply to the exec (request id 1)
  std::string error;  // what the error says
};

void PrintTo(const HostileReply& r, std::ostream* os) { *os << r.line.substr(0, 60); }

class HostileReplyTest : public HostileGuestTest,
                         public ::testing::WithParamInterface<HostileReply> {};

TEST_P(HostileReplyTest, IsAClearErrorNotACrash) {
  Channel c;
  c.Say(GetParam().line + "\n");
  Status s = c.Exec();
  ExpectBroken(c, s, GetParam().error);
  EXPECT_EQ(s.message().rfind("the guest agent broke the protocol: ", 0), 0u) << s.message();
}

const std::string kNotObject = "a line that is not one JSON object in UTF-8";

INSTANTIATE_TEST_SUITE_P(
    Replies, HostileReplyTest,
    ::testing::Values(
        HostileReply{R"({"id":"1","exit_code":0})", R"("id" must be a non-negative integer)"},
        HostileReply{R"({"id":1.0,"exit_code":0})", R"("id" must be a non-negative integer)"},
        HostileReply{R"({"id":-1,"exit_code":0})", R"("id" must be a non-negative integer)"},
        HostileReply{R"({"id":1,"exit_code":"0"})", R"("exit_code" must be an integer from 0)"},
        HostileReply{R"({"id":1,"exit_code":256})", R"("exit_code" must be an integer from 0)"},
        HostileReply{R"({"id":1,"exit_code":18446744073709551615})",
                     R"("exit_code" must be an integer from 0)"},
        HostileReply{R"({"id":1,"exit_code":0,"signal":true})", R"("signal" must be)"},
        HostileReply{R"({"id":1,"exit_code":0,"duration_ms":"1"})", R"("duration_ms" must be)"},
        HostileReply{R"({"id":1,"exit_code":0,"timed_out":"no"})",
                     R"("timed_out" must be true or false)"},
        HostileReply{R"({"id":1,"error":42,"exit_code":127})", R"("error" must be a string)"},
        HostileReply{R"({"id":1,"error":null})", R"("error" must be a string)"},
        HostileReply{R"({"id":1,"stream":1,"data":"aGk="})", R"("stream" must be a string)"},
        HostileReply{R"({"id":1,"stream":"stdin","data":"aGk="})",
                     R"("stream" must be "stdout" or "stderr")"},
        HostileReply{R"({"id":1,"stream":"stdout","data":7})", R"("data" must be a string)"},
        HostileReply{R"({"id":1,"stream":"stdout","data":"not base64!"})", "is not base64"},
        HostileReply{R"({"id":1,"stream":"stdout"})", "is not base64"},
        HostileReply{R"({"id":1,"exit_code":0,"signal":[9]})", "holds an array or an object"},
        // Refused before it is parsed: a document this deep overflows the stack when copied.
        HostileReply{R"({"id":1,"exit_code":0,"x":)" + std::string(100000, '[') +
                         std::string(100000, ']') + "}",
                     kNotObject},
        HostileReply{R"({"id":1})", "an exec reply with no output, exit code or error"},
        HostileReply{R"({"stream":"stdout","data":"aGk="})", "a reply without an id"},
        HostileReply{"[1,2]", kNotObject}, HostileReply{"42", kNotObject},
        HostileReply{"\"text\"", kNotObject}, HostileReply{"null", kNotObject},
        HostileReply{"not json", kNotObject}, HostileReply{"{\"id\":1,", kNotObject},
        HostileReply{"{\"id\":1,\"error\":\"\xff\xfe\"}", kNotObject},
        HostileReply{"{\"id\":1,\"exit_code\":0,\"\xc3\x28\":1}", kNotObject},
        HostileReply{R"({"invalid":"a guest may say this too"})", kNotObject}));

// Both sides read through LineChannel: nesting past kMaxDepth is refused before parsing.
TEST(LineChannelDepth, DeepNestingIsInvalidBeforeItIsParsed) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  LineChannel channel(fds[0]);
  const int max = LineChannel::kMaxDepth;
  const std::string ok = "{\"a\":" + std::string(max - 1, '[') + std::string(max - 1, ']') + "}\n";
  const std::string deep = "{\"a\":" + std::string(max, '[') + std::string(max, ']') + "}\n";
  const std::string quoted = "{\"a\":\"" + std::string(1000, '[') + "\\\"\"}\n";  // in a string
  const std::string all = ok + deep + quoted;
  ASSERT_EQ(::write(fds[1], all.data(), all.size()), static_cast<ssize_t>(all.size()));
  ASSERT_EQ(channel.ReadSome(), LineChannel::ReadResult::kData);
  auto first = channel.Next();
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->contains("invalid"));
  auto second = channel.Next();
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["invalid"], "a message may nest at most 32 levels");
  auto third = channel.Next();
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->contains("invalid"));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(HostileGuestTest, HostileGreetings) {
  for (const std::string line :
       {R"({"event":"ready","uptime_ms":"soon"})", R"({"event":7,"uptime_ms":1})",
        R"({"id":"0","uptime_ms":1})", R"({"id":5,"ok":true})", "\xff\n"}) {
    SCOPED_TRACE(line);
    Channel c;
    c.Say(line + "\n");
    auto ready = c.client->WaitReady(milliseconds(5000));
    ASSERT_FALSE(ready.ok());
    ExpectBroken(c, ready.status(), "the guest agent broke the protocol: ");
  }
}

TEST_F(HostileGuestTest, OversizeLine) {
  Channel c;
  c.Flood(std::string(1 << 20, 'x'));  // never a newline
  ExpectBroken(c, c.Exec(), "the guest agent broke the protocol: a line longer than 96 MiB");
}

// Endless output for a request that was never made: an error at the first one, not a host
// that skips them for as long as the exec may run.
TEST_F(HostileGuestTest, FloodOfRepliesToNoRequest) {
  Channel c;
  c.Flood(R"({"id":99,"stream":"stdout","data":"aGk="})"
          "\n");
  ExpectBroken(c, c.Exec(), "the guest agent broke the protocol: a reply to no request (id 99)");
}

// Late answers the host asked for (pings sent while the guest booted) are skipped, one per ping;
// a second answer to the same ping is a reply to no request.
TEST_F(HostileGuestTest, LateAnswersArePaidForOneByOne) {
  Channel c;
  c.writer = std::thread([&] {
    LineChannel guest(c.guest);
    auto ping = guest.Receive(5000);  // the host pings after a second of silence
    ASSERT_TRUE(ping.ok());
    ASSERT_EQ(ping->value("op", ""), "ping");
    WriteAll(c.guest, R"({"event":"ready","uptime_ms":5})"
                      "\n"
                      R"({"id":0,"ok":true,"uptime_ms":6})"
                      "\n"
                      R"({"id":1,"exit_code":3})"
                      "\n"
                      R"({"id":0,"ok":true,"uptime_ms":7})"
                      "\n");
  });
  auto ready = c.client->WaitReady(milliseconds(5000));
  ASSERT_TRUE(ready.ok()) << ready.status().message();
  EXPECT_EQ(*ready, 5);
  ExecResult result;
  ASSERT_TRUE(c.Exec(&result).ok()) << c.client->health().message();
  EXPECT_EQ(result.exit_code, 3);
  ExpectBroken(c, c.Exec(), "a reply to no request (id 0)");
}

TEST_F(HostileGuestTest, RestartMidRequest) {
  Channel c;
  c.Say(R"({"event":"ready","uptime_ms":1})"
        "\n");
  ExpectBroken(c, c.Exec(), "the guest agent restarted; the request was lost");
}

TEST_F(HostileGuestTest, Silence) {
  {
    Channel c;
    auto ready = c.client->WaitReady(milliseconds(300));
    ASSERT_FALSE(ready.ok());
    ExpectBroken(c, ready.status(), "the guest agent did not start in time");
  }
  Channel c;
  Status s = c.client->Relay(
      {{"op", "configure"}}, [](const GuestMessage&) { return Status::Ok(); }, {},
      milliseconds(300));
  ExpectBroken(c, s, "the guest agent did not answer in time");
}

TEST_F(HostileGuestTest, HangUp) {
  Channel c;
  ::shutdown(c.guest, SHUT_WR);
  ExpectBroken(c, c.Exec(), "the guest agent is gone: the channel closed");
}

// A file whose content is not base64 in a get reply.
TEST_F(HostileGuestTest, GetWithMalformedData) {
  Channel c;
  c.Say(R"({"id":1,"ok":true,"data":"%%%"})"
        "\n");
  auto got = c.client->Get("/etc/hostname");
  ASSERT_FALSE(got.ok());
  ExpectBroken(c, got.status(), "the content of /etc/hostname not in base64");
}

// `vmlaunch exec` reads what the monitor relays from the guest: the same checks apply there.
TEST_F(HostileGuestTest, MonitorClientChecksRelayedReplies) {
  const auto dir = std::filesystem::temp_directory_path() / ("hostile-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  const std::string path = (dir / "monitor.sock").string();
  ASSERT_LT(path.size(), sizeof(sun.sun_path));
  path.copy(sun.sun_path, path.size());
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"stream":"stdout","data":"!!"})", "not base64"},
      {R"({"exit_code":"0"})", R"("exit_code" must be an integer)"},
      {"{\"error\":\"\xff\"}", kNotObject}};
  for (const auto& [line, error] : cases) {
    SCOPED_TRACE(line);
    std::thread monitor([&, line = line] {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      ASSERT_GE(fd, 0);
      LineChannel channel(fd);
      ASSERT_TRUE(channel.Receive(5000).ok());
      WriteAll(fd, line + "\n");
      ::close(fd);
    });
    ExecResult result;
    auto reply = MonitorRequest(
        dir.string(), AgentClient::ExecRequestJson({.argv = {"true"}}),
        [&](const GuestMessage& r) { return AgentClient::ApplyExecReply(r, &result, {}); });
    monitor.join();
    ASSERT_FALSE(reply.ok());
    EXPECT_NE(reply.status().message().find(error), std::string::npos) << reply.status().message();
  }
  ::close(listener);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace airlock::vmlaunch
