// SessionTable: creation rules, lookup by source and token, expiry, persistence.
#include "gateway/control/session_table.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace airlock::control {
namespace {

class FakeClock : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override { return now; }
  std::chrono::system_clock::time_point now =
      std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
};

SessionSpec Spec(const char* policy, const char* source = nullptr) {
  SessionSpec s;
  s.policy = policy;
  if (source) s.source = net::IpAddress::Parse(source);
  return s;
}

TEST(SessionTable, TokensAreShownOnceAndOnlyTheirHashIsKept) {
  FakeClock clock;
  SessionTable t("", clock);
  auto created = t.Create(Spec("p"));
  ASSERT_TRUE(created.ok()) << created.status().message();
  const auto& [session, token] = created.value();
  EXPECT_EQ(token.size(), 48u);
  EXPECT_EQ(session.token_sha256.size(), 64u);
  EXPECT_EQ(session.token_sha256.find(token), std::string::npos);
  EXPECT_TRUE(t.FindByToken(session.id, token));
  EXPECT_FALSE(t.FindByToken(session.id, token + "x"));
  EXPECT_FALSE(t.FindByToken("other", token));
}

TEST(SessionTable, SourceAddressesAreUnique) {
  FakeClock clock;
  SessionTable t("", clock);
  ASSERT_TRUE(t.Create(Spec("p", "100.96.0.2")).ok());
  auto dup = t.Create(Spec("q", "100.96.0.2"));
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("belongs to session"), std::string::npos);
  EXPECT_EQ(t.FindBySource(*net::IpAddress::Parse("100.96.0.2"))->policy, "p");
  EXPECT_FALSE(t.FindBySource(*net::IpAddress::Parse("100.96.0.6")));
}

// A session past its TTL that the sweep has not ended yet holds nothing: its address can be
// taken by a new session at once, lookups miss it, and the sweep then ends it alone (until then
// the list shows it with its expiry, so that a session leaves the list when its end is audited).
TEST(SessionTable, AnExpiredSessionFreesItsAddressBeforeTheSweep) {
  FakeClock clock;
  SessionTable t("", clock);
  SessionSpec first = Spec("p", "100.96.0.2");
  first.ttl = std::chrono::seconds(5);
  auto old = t.Create(first);
  ASSERT_TRUE(old.ok());
  clock.now += std::chrono::seconds(5);
  auto next = t.Create(Spec("q", "100.96.0.2"));
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(t.FindBySource(*net::IpAddress::Parse("100.96.0.2"))->policy, "q");
  EXPECT_EQ(t.List().size(), 2u);
  EXPECT_FALSE(t.Get(old->first.id));
  auto swept = t.Expire();
  ASSERT_EQ(swept.size(), 1u);
  EXPECT_EQ(swept[0].id, old->first.id);
  ASSERT_EQ(t.List().size(), 1u);
  EXPECT_EQ(t.List()[0].id, next->first.id);
  EXPECT_EQ(t.FindBySource(*net::IpAddress::Parse("100.96.0.2"))->policy, "q");
}

TEST(SessionTable, RejectsBadSpecs) {
  FakeClock clock;
  SessionTable t("", clock);
  SessionSpec bad_id = Spec("p");
  bad_id.id = "Has Spaces";
  EXPECT_FALSE(t.Create(bad_id).ok());
  SessionSpec nothing = Spec("p");
  nothing.with_token = false;
  EXPECT_FALSE(t.Create(nothing).ok());
  SessionSpec zero_ttl = Spec("p");
  zero_ttl.ttl = std::chrono::seconds(0);
  EXPECT_FALSE(t.Create(zero_ttl).ok());
}

TEST(SessionTable, ExpiryAndPersistence) {
  FakeClock clock;
  auto dir = std::filesystem::temp_directory_path() / ("airlock-sess-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string file = (dir / "sessions.json").string();
  std::string token;
  {
    SessionTable t(file, clock);
    SessionSpec shortlived = Spec("p", "100.96.0.2");
    shortlived.ttl = std::chrono::seconds(10);
    shortlived.id = "short";
    ASSERT_TRUE(t.Create(shortlived).ok());
    SessionSpec longlived = Spec("p");
    longlived.id = "long";
    auto c = t.Create(longlived);
    ASSERT_TRUE(c.ok());
    token = c.value().second;
  }
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(token), std::string::npos) << "the token itself is never persisted";
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);

  clock.now += std::chrono::seconds(11);
  SessionTable restored(file, clock);
  ASSERT_TRUE(restored.Load().ok());
  EXPECT_EQ(restored.size(), 1u) << "sessions that expired while down are dropped";
  EXPECT_TRUE(restored.FindByToken("long", token));
  clock.now += std::chrono::seconds(3600);
  auto gone = restored.Expire();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].id, "long");
  EXPECT_EQ(restored.size(), 0u);
  std::filesystem::remove_all(dir);
}

TEST(SessionTable, DamagedStateIsDroppedNeverThrown) {
  FakeClock clock;
  SessionTable t("", clock);
  for (const char* text : {"not json", "[]", R"({"sessions": 5})", R"({"sessions": {"a": 1}})"}) {
    EXPECT_FALSE(t.Restore(text).ok()) << text;
  }
  const std::string good_hash(64, 'a');
  const std::string expires = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(clock.now.time_since_epoch()).count() +
      3600);
  const std::string session = R"("policy": "p", "created": 1, "expires": )" + expires;
  auto restored = t.Restore(R"({"sessions": [
      {"id": 5, )" + session +
                            R"(},
      {"id": "short-hash", "token_sha256": "abc", )" +
                            session + R"(},
      {"id": "bad-source", "source": "not-an-ip", )" +
                            session + R"(},
      {"id": "bad-labels", "labels": {"a": 1}, )" +
                            session + R"(},
      {"id": "bad-placeholder", "placeholders": [{"env": 7}], )" +
                            session + R"(},
      {"id": "no-expiry", "policy": "p", "created": 1},
      {"id": "beyond-the-clock", "policy": "p", "created": 18000001000, "expires": 47},
      {"id": "before-1970", "policy": "p", "created": -1, "expires": 18446744073709551615},
      "not an object",
      {"id": "good", "token_sha256": ")" +
                            good_hash + R"(", "labels": {"a": "b"}, )" + session + R"(}]})");
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_EQ(*restored, 9u);
  EXPECT_EQ(t.size(), 1u);
  ASSERT_TRUE(t.Get("good"));
  EXPECT_EQ(t.Get("good")->labels.at("a"), "b");
  // The stored hash is compared in constant time over its 64 digits, and only when it has them.
  EXPECT_FALSE(t.FindByToken("good", "whatever"));
  EXPECT_FALSE(t.FindByToken("short-hash", "whatever"));
}

TEST(SessionUsage, RequestWindow) {
  SessionUsage u;
  auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000 / 60 * 60));
  for (int i = 0; i < 10; ++i) u.CountRequest(t0);
  EXPECT_EQ(u.RequestsLastMinute(t0), 10u);
  EXPECT_EQ(u.RequestsLastMinute(t0 + std::chrono::seconds(90)), 5u);  // half of last minute
  EXPECT_EQ(u.RequestsLastMinute(t0 + std::chrono::seconds(300)), 0u);
}

}  // namespace
}  // namespace airlock::control
