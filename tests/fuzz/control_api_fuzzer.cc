// Fuzz target: the control API's request handling (control::ControlApi::Handle) on a fresh session
// table, and the session table's persisted form read back at start (SessionTable::Restore). The
// input is "METHOD PATH\nBODY", or "RESTORE -\nTABLE". Checks that every answer is an HTTP status
// with a body that serialises, and that a created session can be read back and deleted.
#include <string>
#include <string_view>

#include "gateway/base/clock.h"
#include "gateway/control/control_api.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airlock::control;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string_view line = input.substr(0, nl);
  std::string body(nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1));
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;

  SessionTable sessions("", airlock::SystemClock());
  ControlHooks hooks;
  hooks.policy_names = [] { return std::vector<std::string>{"default", "github"}; };
  hooks.reload = [] { return airlock::Status::Ok(); };
  hooks.audit_healthy = [] { return true; };
  hooks.session_created = [](const Session&) {};
  hooks.session_ended = [](const Session&, const char*) {};
  hooks.ca_certificate = [] { return std::string("-----BEGIN CERTIFICATE-----\n"); };
  hooks.make_placeholders = [](const std::string& policy) {
    std::vector<Placeholder> out;
    if (policy == "github") out.push_back({"github", "GITHUB_TOKEN", "ghp_placeholder"});
    return out;
  };
  ControlApi api(sessions, hooks);
  // "RESTORE -" reads the body as the gateway's persisted session table instead.
  if (line.substr(0, space) == "RESTORE") {
    auto restored = sessions.Restore(body);
    if (!restored.ok()) FUZZ_CHECK(sessions.size() == 0);
    for (const Session& s : sessions.List()) {
      FUZZ_CHECK(s.token_sha256.empty() || s.token_sha256.size() == 64);
      FUZZ_CHECK(api.Handle({"GET", "/v1/sessions/" + s.id, ""}).status == 200);
    }
    return 0;
  }
  ControlResponse r =
      api.Handle({std::string(line.substr(0, space)), std::string(line.substr(space + 1)), body});
  FUZZ_CHECK(r.status >= 200 && r.status < 600);
  (void)r.Text();
  if (r.status == 201) {
    FUZZ_CHECK(r.body.is_object() && r.body.contains("id") && r.body["id"].is_string());
    const std::string id = r.body["id"].get<std::string>();
    FUZZ_CHECK(sessions.Get(id).has_value());
    FUZZ_CHECK(api.Handle({"DELETE", "/v1/sessions/" + id, ""}).status == 204);
    FUZZ_CHECK(!sessions.Get(id).has_value());
  }
  return 0;
}
