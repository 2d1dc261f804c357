// The credential broker's pure parts: value templates, placeholders and where they are found
// (re-cased, percent-encoded, inside Basic credentials), and injection into a request head.
#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <set>

#include "gateway/base/base64.h"
#include "gateway/credentials/injection.h"
#include "gateway/credentials/placeholder.h"
#include "gateway/credentials/reflection.h"
#include "gateway/credentials/value_template.h"

namespace airlock::credentials {
namespace {

TEST(ValueTemplateTest, RendersAndRefusesWhatItCannot) {
  std::string error;
  auto bearer = ParseValueTemplate("Bearer {token}", &error);
  ASSERT_TRUE(bearer) << error;
  EXPECT_EQ(bearer->Render("t0k"), "Bearer t0k");
  auto basic = ParseValueTemplate("Basic {base64(x-access-token:{token})}", &error);
  ASSERT_TRUE(basic) << error;
  EXPECT_EQ(basic->Render("t0k"), "Basic " + Base64Encode("x-access-token:t0k"));
  for (const char* bad : {"Bearer", "{token} {token}", "Bearer {tokn}{token}",
                          "{base64(x)} {token}", "{base64(x:{token})"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseValueTemplate(bad, &error));
    EXPECT_FALSE(error.empty());
  }
}

TEST(PlaceholderTest, FoundHoweverItIsWritten) {
  std::string ph = NewPlaceholder("ghp_");
  ASSERT_EQ(ph.size(), 4 + kPlaceholderKeyLength);
  EXPECT_NE(NewPlaceholder("ghp_"), ph);
  const std::string key = PlaceholderKey(ph);
  std::string upper = ph;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string escaped;
  for (char c : ph) {
    char buf[4];
    std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
    escaped += buf;
  }
  std::string twice;  // %25 escapes the escapes
  for (char c : escaped) twice += c == '%' ? std::string("%25") : std::string(1, c);
  for (const std::string& text : {"Bearer " + ph, "/repos/" + upper + "/x", "?key=" + escaped,
                                  "?key=" + twice, ph.substr(4) + "deadbeef", "x" + ph.substr(4)}) {
    SCOPED_TRACE(text);
    std::set<std::string> keys;
    CollectPlaceholderKeys(text, &keys);
    EXPECT_TRUE(keys.count(key));
  }
  std::set<std::string> keys;
  CollectPlaceholderKeys("ghp_" + ph.substr(4, 35) + " " + ph.substr(39), &keys);  // split
  EXPECT_FALSE(keys.count(key));
  // Decoded once (as an upstream reads it) "%2531A%31B" is "%31A1B", whose digits "31A1B" are a
  // key; decoded twice they are not. Each round counts (found by fuzzing).
  const std::string hidden = "31" + key.substr(2, 26) + "1" + key.substr(29, 7);
  CollectPlaceholderKeys("?t=%2531" + key.substr(2, 26) + "%31" + key.substr(29, 7), &keys);
  EXPECT_TRUE(keys.count(hidden));
}

config::CredentialConfig Credential(const char* header, const char* value) {
  std::string error;
  config::CredentialConfig c;
  c.name = "github";
  c.inject.push_back({header, "", *ParseValueTemplate(value, &error)});
  return c;
}

std::string Header(const http::HttpHead& h, const char* name) {
  const std::string* v = h.Find(name);
  return v ? *v : "";
}

// The scan skips text 36 bytes at a time; it must find exactly what looking at every window of
// every hex run finds.
std::set<std::string> EveryWindow(std::string_view text) {
  std::set<std::string> keys;
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i < text.size();) {
    size_t end = i;
    while (end < text.size() && hex(text[end])) ++end;
    for (size_t at = i; at + kPlaceholderKeyLength <= end; ++at) {
      keys.insert(PlaceholderKey(text.substr(at, kPlaceholderKeyLength)));
    }
    i = end + 1;
  }
  return keys;
}

TEST(PlaceholderTest, TheSkippingScanFindsEveryWindow) {
  std::mt19937 rng(11);
  const std::string hexish = "0123456789abcdefABCDEF";
  for (int n = 0; n < 3000; ++n) {
    std::string text;
    const size_t len = rng() % 300;
    const unsigned separators = 1 + rng() % 40;  // how rarely a run is broken
    for (size_t i = 0; i < len; ++i) {
      text.push_back(rng() % separators == 0 ? "-x /"[rng() % 4] : hexish[rng() % hexish.size()]);
    }
    std::set<std::string> got;
    CollectPlaceholderKeys(text, &got);
    ASSERT_EQ(got, EveryWindow(text)) << text;
  }
}

TEST(PlaceholderTest, TheKeyFilterPassesLiveKeysOnly) {
  const std::string key = "0123456789abcdef0123456789abcdef0123";
  const std::string other = "fedcba9876543210fedcba9876543210fedc";
  const std::string text = "{\"a\": \"" + key + "\", \"b\": \"" + other + "\"}";
  KeyFilter filter;
  std::set<std::string> keys;
  CollectPlaceholderKeys(text, &keys, &filter);
  EXPECT_TRUE(keys.empty());
  filter.Add(PlaceholderKey("ghp_" + key));
  CollectPlaceholderKeys(text, &keys, &filter);
  EXPECT_EQ(keys, std::set<std::string>{key});
  keys.clear();
  // key[10] is 'a': escaped as %61, the scan decodes it and still finds the key.
  CollectPlaceholderKeys("x" + key.substr(0, 10) + "%61" + key.substr(11) + "y", &keys, &filter);
  EXPECT_EQ(keys, std::set<std::string>{key});
  keys.clear();
  filter.Rebuild(std::vector<std::string>{other});
  CollectPlaceholderKeys(text, &keys, &filter);
  EXPECT_EQ(keys, std::set<std::string>{other});
}

TEST(InjectionTest, ReplacesWhereItStandsOrSetsTheHeader) {
  const std::string ph = "ghp_" + std::string(36, 'a');
  http::HttpHead head;
  head.headers = {{"Authorization", "token " + ph}, {"Accept", "*/*"}};
  auto written =
      InjectCredential(&head, &head.target, Credential("Authorization", "Bearer {token}"), ph, "T");
  EXPECT_EQ(written, std::vector<std::string>{"Authorization"});
  EXPECT_EQ(Header(head, "Authorization"), "token T");  // the client's scheme kept
  head.headers = {{"authorization", "Basic " + Base64Encode("x-access-token:" + ph)}};
  InjectCredential(&head, &head.target, Credential("Authorization", "Bearer {token}"), ph, "T");
  EXPECT_EQ(Header(head, "Authorization"), "Basic " + Base64Encode("x-access-token:T"));
  head.headers = {{"Authorization", "Bearer the-clients-own"}, {"Authorization", "Basic eA=="}};
  InjectCredential(&head, &head.target, Credential("Authorization", "Bearer {token}"), ph, "T");
  EXPECT_EQ(head.Count("Authorization"), 1u);  // never passed on: replaced
  EXPECT_EQ(Header(head, "Authorization"), "Bearer T");
  head.headers = {};
  InjectCredential(&head, &head.target, Credential("X-Api-Key", "{token}"), ph, "T");
  EXPECT_EQ(Header(head, "X-Api-Key"), "T");
}

TEST(InjectionTest, QueryParametersAreReplacedWhereTheyStandOrAppended) {
  const std::string ph = std::string(36, 'b');
  std::string error;
  config::CredentialConfig c;
  c.name = "keyed";
  c.inject.push_back({"", "api_key", *ParseValueTemplate("{token}", &error)});
  http::HttpHead head;
  for (auto [target, want] : std::vector<std::pair<std::string, std::string>>{
           {"/q?a=1&api_key=" + ph + "&b=2", "/q?a=1&api_key=t%2Bk%2F&b=2"},
           {"/q", "/q?api_key=t%2Bk%2F"},
           {"/q?api_key=mine&api_key=other&c=3", "/q?c=3&api_key=t%2Bk%2F"},
           {"/q?x=" + ph, "/q?x=" + ph + "&api_key=t%2Bk%2F"},
       }) {
    std::string t = target;
    EXPECT_EQ(InjectCredential(&head, &t, c, ph, "t+k/"),
              std::vector<std::string>{"query:api_key"});
    EXPECT_EQ(t, want) << target;
  }
}

TEST(InjectionTest, Base64InTheUrlIsDecodedForTheLeakCheck) {
  const std::string ph = "ghp_" + std::string(36, 'c');
  std::string b64 = Base64Encode("state=" + ph + "&x=1");
  std::string url_safe = b64;
  for (char& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!url_safe.empty() && url_safe.back() == '=') url_safe.pop_back();
  for (const std::string& target :
       {"/cb?d=" + b64, "/cb/" + url_safe + "/x", "/cb?d=" + url_safe}) {
    http::HttpHead head;
    head.target = target;
    std::set<std::string> keys;
    for (const auto& site : PlaceholderSites(head)) {
      if (site.where == "url (base64)") CollectPlaceholderKeys(site.text, &keys);
    }
    EXPECT_EQ(keys.count(std::string(36, 'c')), 1u) << target;
  }
}

TEST(InjectionTest, SitesCoverTargetHeadersAndBasicButNotTheProxysOwnCredentials) {
  http::HttpHead head;
  head.target = "/x?a=1";
  head.headers = {{"Authorization", "Basic " + Base64Encode("u:p")},
                  {"Proxy-Authorization", "Basic " + Base64Encode("s-1:token")}};
  std::vector<std::string> where;
  for (const auto& s : PlaceholderSites(head)) where.push_back(s.where + "=" + s.text);
  EXPECT_EQ(where, (std::vector<std::string>{"url=/x?a=1", "header:Authorization=Basic dTpw",
                                             "header:Authorization (basic)=u:p"}));
}

TEST(ReflectionFilterTest, ReplacesTheTokenWhereverTheReadsSplitIt) {
  const std::string token = "ghs_REAL0123456789abcdefREAL";
  const std::string body = "{\"auth\": \"Bearer " + token + "\", \"again\": \"" + token + "\"}";
  const std::string want = "{\"auth\": \"Bearer PH\", \"again\": \"PH\"}";
  for (size_t split = 0; split <= body.size(); ++split) {
    for (size_t step : {1ul, 3ul, body.size() + 1}) {
      ReflectionFilter f({{token, "PH"}});
      std::string out = f.Feed(std::string_view(body).substr(0, split));
      for (size_t at = split; at < body.size(); at += step) {
        out += f.Feed(std::string_view(body).substr(at, step));
      }
      out += f.Finish();
      ASSERT_EQ(out, want) << "split " << split << " step " << step;
      EXPECT_TRUE(f.hit());
    }
  }
  ReflectionFilter clean({{token, "PH"}});
  std::string out = clean.Feed("nothing to see");
  out += clean.Finish();
  EXPECT_EQ(out, "nothing to see");
  EXPECT_FALSE(clean.hit());
  std::string header = "Basic " + token;
  EXPECT_TRUE(clean.Replace(&header));
  EXPECT_EQ(header, "Basic PH");
}

}  // namespace
}  // namespace airlock::credentials
