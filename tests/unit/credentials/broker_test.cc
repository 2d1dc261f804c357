// CredentialBroker through real sources that need no network: static files, exec helpers, jwt.
#include "gateway/credentials/broker.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/unit/credentials/test_files.h"

namespace airlock::credentials {
namespace {

using std::chrono::seconds;
using test_support::TempDir;

// Every RefreshEvent the broker reports, from whichever thread reports it.
class Events {
 public:
  CredentialBroker::Listener Listener() {
    return [this](const RefreshEvent& ev) {
      std::lock_guard<std::mutex> lk(mu_);
      events_.push_back(ev);
      cv_.notify_all();
    };
  }
  // Waits up to `timeout` for `n` events; returns what arrived.
  std::vector<RefreshEvent> WaitFor(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return events_.size() >= n; });
    return events_;
  }
  std::vector<RefreshEvent> Get() {
    std::lock_guard<std::mutex> lk(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RefreshEvent> events_;
};

config::CredentialConfig Static(const std::string& name, const std::string& file) {
  config::CredentialConfig c;
  c.name = name;
  c.source = "static";
  c.file = file;
  return c;
}

config::CredentialConfig Exec(const std::string& name, const std::string& script) {
  config::CredentialConfig c;
  c.name = name;
  c.source = "exec";
  c.command = {script};
  c.timeout = std::chrono::milliseconds(5000);
  return c;
}

config::CredentialConfig Jwt(const std::string& name, const std::string& key_file) {
  config::CredentialConfig c;
  c.name = name;
  c.source = "jwt";
  c.key_file = key_file;
  c.ttl = seconds(300);
  return c;
}

std::unique_ptr<CredentialBroker> MustCreate(const std::vector<config::CredentialConfig>& cs) {
  auto b = CredentialBroker::Create(cs, SourceOptions{});
  EXPECT_TRUE(b.ok()) << b.status().message();
  return b.ok() ? std::move(b).value() : nullptr;
}

TimePoint Now() { return std::chrono::system_clock::now(); }

int64_t Seconds(TimePoint t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

std::string Rfc3339(TimePoint t) {
  time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

TEST(CredentialBrokerTest, StaticFileTokenIsReadAtStart) {
  TempDir dir;
  struct Case {
    const char* content;
    const char* token;
  };
  for (const Case& c : std::vector<Case>{
           {"ghp_token\n", "ghp_token"},
           {"ghp_token", "ghp_token"},
           {"ghp_token \r\nsecond line\n", "ghp_token"},  // first line, trailing blanks dropped
           {" inner space \n", " inner space"},
       }) {
    SCOPED_TRACE(c.content);
    const std::string file = dir.Write("token", c.content);
    Events events;
    auto broker = MustCreate({Static("github", file)});
    ASSERT_TRUE(broker);
    ASSERT_TRUE(broker->Start(events.Listener()).ok());
    auto evs = events.Get();
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].credential, "github");
    EXPECT_TRUE(evs[0].ok);
    EXPECT_TRUE(evs[0].serving);
    EXPECT_EQ(evs[0].error, "");
    EXPECT_EQ(evs[0].expires_at, std::nullopt);
    EXPECT_EQ(evs[0].next_attempt, seconds(300));  // a token without expiry is re-read then
    auto token = broker->TokenFor("github", Audience{"s-1", "api.github.com"}, Now());
    ASSERT_TRUE(token.ok()) << token.status().message();
    EXPECT_EQ(token->value, c.token);
    EXPECT_EQ(token->expires_at, TimePoint::max());
    ASSERT_NE(broker->Find("github"), nullptr);
    EXPECT_EQ(broker->Find("github")->file, file);
    EXPECT_EQ(broker->Find("gitlab"), nullptr);
    EXPECT_FALSE(broker->TokenFor("gitlab", Audience{}, Now()).ok());

    // A rewritten file is read at the next refresh, not by TokenFor.
    dir.Write("token", "rotated\n");
    EXPECT_EQ(broker->TokenFor("github", Audience{}, Now())->value, c.token);
  }
}

TEST(CredentialBrokerTest, StaticFailuresStopStartAndNameTheCredential) {
  TempDir dir;
  const std::string empty = dir.Write("empty", "\n");
  struct Case {
    config::CredentialConfig credential;
    std::string error;
  };
  config::CredentialConfig env = Static("from-env", "");
  env.env = "AIRLOCK_BROKER_TEST_UNSET_VARIABLE";
  unsetenv(env.env.c_str());
  for (const Case& c : std::vector<Case>{
           {Static("github", dir.Path("missing")),
            "credential 'github': cannot read its file " + dir.Path("missing")},
           {Static("blank", empty), "credential 'blank': " + empty + " holds no token"},
           {env,
            "credential 'from-env': environment variable AIRLOCK_BROKER_TEST_UNSET_VARIABLE "
            "holds no token"},
       }) {
    Events events;
    auto broker = MustCreate({c.credential});
    ASSERT_TRUE(broker);
    Status s = broker->Start(events.Listener());
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.message(), c.error);
    EXPECT_TRUE(events.Get().empty());
  }
}

TEST(CredentialBrokerTest, StaticFromTheEnvironment) {
  config::CredentialConfig c = Static("openai", "");
  c.env = "AIRLOCK_BROKER_TEST_TOKEN";
  setenv(c.env.c_str(), "sk-from-env  ", 1);
  Events events;
  auto broker = MustCreate({c});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->Start(events.Listener()).ok());
  unsetenv(c.env.c_str());
  EXPECT_EQ(broker->TokenFor("openai", Audience{}, Now())->value, "sk-from-env");
}

TEST(CredentialBrokerTest, ExecHelperTokenWithExpiry) {
  TempDir dir;
  const TimePoint expires = std::chrono::system_clock::from_time_t(Seconds(Now()) + 3600);
  const std::string script =
      dir.Script("helper", "cat <<'EOF'\n{\"token\": \"exec-token-1\", \"expires_at\": \"" +
                               Rfc3339(expires) + "\"}\nEOF\n");
  Events events;
  auto broker = MustCreate({Exec("vault", script)});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->Start(events.Listener()).ok());
  auto evs = events.Get();  // the first fetch is reported before Start returns
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].credential, "vault");
  EXPECT_TRUE(evs[0].ok) << evs[0].error;
  EXPECT_TRUE(evs[0].serving);
  EXPECT_EQ(evs[0].expires_at, expires);
  // Refreshed at 65-75% of its lifetime (just under an hour).
  EXPECT_GE(evs[0].next_attempt, seconds(3590 * 65 / 100));
  EXPECT_LE(evs[0].next_attempt, seconds(3600 * 75 / 100));

  auto token = broker->TokenFor("vault", Audience{"s-1", "vault.example.com"}, Now());
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(token->value, "exec-token-1");
  EXPECT_EQ(token->expires_at, expires);
  auto late = broker->TokenFor("vault", Audience{}, expires);  // not valid at its expiry
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(), "no valid token");

  auto statuses = broker->Statuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].name, "vault");
  EXPECT_EQ(statuses[0].refreshes, 1u);
  EXPECT_EQ(statuses[0].failures, 0u);
  EXPECT_EQ(statuses[0].expires_at, expires);
}

TEST(CredentialBrokerTest, FailingExecHelperIsReportedNotFatal) {
  TempDir dir;
  const std::string script = dir.Script(
      "helper", "echo '{\"token\": \"never-served\"}'\necho 'stderr-diagnostic' >&2\nexit 1\n");
  Events events;
  auto broker = MustCreate({Exec("vault", script)});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->Start(events.Listener()).ok());  // only static sources stop Start
  auto evs = events.Get();
  ASSERT_GE(evs.size(), 1u);
  EXPECT_EQ(evs[0].credential, "vault");
  EXPECT_FALSE(evs[0].ok);
  EXPECT_FALSE(evs[0].serving);
  EXPECT_EQ(evs[0].expires_at, std::nullopt);
  EXPECT_EQ(evs[0].next_attempt, seconds(1));  // the first back-off
  EXPECT_NE(evs[0].error.find("exited with status 1"), std::string::npos) << evs[0].error;
  EXPECT_EQ(evs[0].error.find("stderr-diagnostic"), std::string::npos) << evs[0].error;
  EXPECT_EQ(evs[0].error.find("never-served"), std::string::npos) << evs[0].error;

  auto token = broker->TokenFor("vault", Audience{}, Now());
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().message(), "no valid token");
  auto statuses = broker->Statuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].refreshes, 0u);
  EXPECT_GE(statuses[0].failures, 1u);
  EXPECT_EQ(statuses[0].expires_at, std::nullopt);
}

TEST(CredentialBrokerTest, ExecHelperOutputErrorsAreReported) {
  TempDir dir;
  struct Case {
    const char* output;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "the helper's output is not a JSON object"},
           {"{\"token\": \"\"}", "the helper's output has no \"token\" string"},
           {"{\"token\": \"t\", \"expires_at\": \"2001-01-01T00:00:00Z\"}",
            "the fetched token has already expired"},
       }) {
    SCOPED_TRACE(c.output);
    Events events;
    auto broker = MustCreate(
        {Exec("vault", dir.Script("helper", std::string("cat <<'EOF'\n") + c.output + "\nEOF\n"))});
    ASSERT_TRUE(broker);
    ASSERT_TRUE(broker->Start(events.Listener()).ok());
    auto evs = events.Get();
    ASSERT_GE(evs.size(), 1u);
    EXPECT_FALSE(evs[0].ok);
    EXPECT_EQ(evs[0].error, c.error);
  }
}

TEST(CredentialBrokerTest, ShortLivedExecTokenIsRefreshedAgain) {
  TempDir dir;
  // Each run prints the next token, valid for 2 seconds.
  const std::string script = dir.Script("helper",
                                        "n=$(cat \"$0.count\" 2>/dev/null || echo 0)\n"
                                        "n=$((n + 1))\n"
                                        "echo \"$n\" > \"$0.count\"\n"
                                        "echo \"{\\\"token\\\": \\\"rotating-$n\\\", "
                                        "\\\"expires_at\\\": $(( $(date +%s) + 2 ))}\"\n");
  Events events;
  auto broker = MustCreate({Exec("rotating", script)});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->Start(events.Listener()).ok());
  ASSERT_EQ(events.Get().size(), 1u);
  EXPECT_EQ(broker->TokenFor("rotating", Audience{}, Now())->value, "rotating-1");

  auto evs = events.WaitFor(2, std::chrono::seconds(10));
  ASSERT_GE(evs.size(), 2u) << "no refresh within 10 s";
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(evs[i].credential, "rotating");
    EXPECT_TRUE(evs[i].ok) << evs[i].error;
    ASSERT_TRUE(evs[i].expires_at);
    EXPECT_GE(evs[i].next_attempt, seconds(1));  // 65-75% of 1-2 s, but at least 1 s
    EXPECT_LE(evs[i].next_attempt, seconds(2));
  }
  EXPECT_GT(*evs[1].expires_at, *evs[0].expires_at);
  auto token = broker->TokenFor("rotating", Audience{}, Now());
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_NE(token->value, "rotating-1");
  EXPECT_EQ(token->value.rfind("rotating-", 0), 0u);
}

TEST(CredentialBrokerTest, StartReportsEverySharedCredentialButNotJwt) {
  TempDir dir;
  auto key = test_support::EcKey("P-256");
  ASSERT_TRUE(key);
  ASSERT_TRUE(test_support::WritePrivateKey(key.get(), dir.Path("key.pem")));
  Events events;
  auto broker =
      MustCreate({Static("b-static", dir.Write("token", "t\n")), Jwt("c-jwt", dir.Path("key.pem")),
                  Exec("a-exec", dir.Script("helper", "echo '{\"token\": \"x\"}'\n"))});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->Start(events.Listener()).ok());
  auto evs = events.Get();
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].credential, "a-exec");
  EXPECT_EQ(evs[1].credential, "b-static");
  auto statuses = broker->Statuses();
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[2].name, "c-jwt");
  EXPECT_EQ(statuses[2].refreshes, 0u);  // nothing minted yet
}

TEST(CredentialBrokerTest, JwtTokensAreMintedPerAudienceAndCached) {
  TempDir dir;
  auto key = test_support::EcKey("P-256");
  ASSERT_TRUE(key);
  ASSERT_TRUE(test_support::WritePrivateKey(key.get(), dir.Path("key.pem")));
  config::CredentialConfig c = Jwt("internal", dir.Path("key.pem"));
  c.issuer = "airlock-test";
  c.claims["team"] = YAML::Load("\"42\"");  // quoted: a string
  c.claims["level"] = YAML::Load("42");
  c.claims["admin"] = YAML::Load("true");
  c.claims["groups"] = YAML::Load("[dev, ops]");
  auto broker = MustCreate({c});
  ASSERT_TRUE(broker);
  ASSERT_TRUE(
      broker->Start([](const RefreshEvent&) { ADD_FAILURE() << "jwt is not shared"; }).ok());

  const TimePoint t0 = std::chrono::system_clock::from_time_t(1772368496);
  auto a1 = broker->TokenFor("internal", Audience{"s-1", "api.example.com"}, t0);
  auto a2 = broker->TokenFor("internal", Audience{"s-1", "api.example.com"}, t0 + seconds(149));
  auto b = broker->TokenFor("internal", Audience{"s-1", "other.example.com"}, t0);
  auto s2 = broker->TokenFor("internal", Audience{"s-2", "api.example.com"}, t0);
  ASSERT_TRUE(a1.ok() && a2.ok() && b.ok() && s2.ok());
  EXPECT_EQ(a1->value, a2->value);  // cached for half its lifetime
  EXPECT_NE(a1->value, b->value);
  EXPECT_NE(a1->value, s2->value);
  EXPECT_EQ(a1->expires_at, t0 + seconds(300));
  auto a3 = broker->TokenFor("internal", Audience{"s-1", "api.example.com"}, t0 + seconds(150));
  ASSERT_TRUE(a3.ok());
  EXPECT_NE(a3->value, a1->value);  // half its lifetime left: minted again
  EXPECT_EQ(a3->expires_at, t0 + seconds(450));

  auto claims_of = [](const std::string& jwt) {
    size_t a = jwt.find('.'), z = jwt.rfind('.');
    auto text = test_support::Base64UrlDecode(jwt.substr(a + 1, z - a - 1));
    return text ? nlohmann::json::parse(*text) : nlohmann::json();
  };
  nlohmann::json claims = claims_of(a1->value);
  ASSERT_TRUE(claims.contains("jti"));
  std::string jti = claims["jti"];
  EXPECT_EQ(jti.size(), 32u);
  EXPECT_EQ(jti.find_first_not_of("0123456789abcdef"), std::string::npos) << jti;
  claims.erase("jti");
  EXPECT_EQ(claims, (nlohmann::json{{"sub", "s-1"},
                                    {"aud", "api.example.com"},
                                    {"iss", "airlock-test"},
                                    {"iat", 1772368496},
                                    {"exp", 1772368796},
                                    {"team", "42"},
                                    {"level", 42},
                                    {"admin", true},
                                    {"groups", {"dev", "ops"}}}));
  EXPECT_EQ(claims_of(b->value)["aud"], "other.example.com");
  EXPECT_EQ(claims_of(s2->value)["sub"], "s-2");
  EXPECT_NE(claims_of(a3->value)["jti"], jti);

  auto statuses = broker->Statuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].refreshes, 4u);  // a1, b, s2, a3
  EXPECT_EQ(statuses[0].expires_at, std::nullopt);
}

TEST(CredentialBrokerTest, CreateRefusesUnusableKeyFiles) {
  TempDir dir;
  auto rsa = test_support::RsaKey(1024);
  ASSERT_TRUE(rsa);
  ASSERT_TRUE(test_support::WritePrivateKey(rsa.get(), dir.Path("small.pem")));
  struct Case {
    config::CredentialConfig credential;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {Jwt("signer", dir.Path("missing.pem")),
            "credential 'signer': cannot read the key file " + dir.Path("missing.pem")},
           {Jwt("small", dir.Path("small.pem")), "credential 'small': " + dir.Path("small.pem") +
                                                     ": an RSA key for RS256 needs at least 2048 "
                                                     "bits"},
       }) {
    auto b = CredentialBroker::Create({Static("ok", dir.Write("t", "t\n")), c.credential},
                                      SourceOptions{});
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().message(), c.error);
  }
}

}  // namespace
}  // namespace airlock::credentials
