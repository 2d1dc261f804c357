// Control API request handling.
#include "gateway/control/control_api.h"

#include <algorithm>

#include "gateway/audit/chain.h"

namespace airlock::control {
namespace {

using json = nlohmann::json;

ControlResponse Error(int status, const std::string& message) {
  return {status, json{{"error", message}}};
}

}  // namespace

std::string ControlResponse::Text() const {
  if (body.is_null()) return std::string();
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

ControlApi::ControlApi(SessionTable& sessions, ControlHooks hooks)
    : sessions_(sessions), hooks_(std::move(hooks)) {}

json ControlApi::SessionJson(const Session& s) {
  json j = {{"id", s.id},
            {"policy", s.policy},
            {"created", audit::FormatTimestamp(s.created)},
            {"expires", audit::FormatTimestamp(s.expires)},
            {"labels", s.labels},
            {"proxy_token", !s.token_sha256.empty()}};
  if (s.source) j["source"] = s.source->ToString();
  j["connections"] = s.usage->connections.load();
  j["bytes_out"] = s.usage->bytes_out.load();
  j["bytes_in"] = s.usage->bytes_in.load();
  return j;
}

ControlResponse ControlApi::CreateSession(const std::string& body) {
  json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object()) return Error(400, "body must be a JSON object");
  static const std::vector<std::string> kKeys = {"id",    "policy",      "source",
                                                 "token", "ttl_seconds", "labels"};
  for (const auto& [key, _] : req.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return Error(400, "unknown key '" + key +
                            "' (known: id, policy, source, token, "
                            "ttl_seconds, labels)");
    }
  }
  SessionSpec spec;
  if (!req.contains("policy") || !req["policy"].is_string()) {
    return Error(400, "'policy' (a string) is required");
  }
  spec.policy = req["policy"].get<std::string>();
  auto names = hooks_.policy_names();
  if (std::find(names.begin(), names.end(), spec.policy) == names.end()) {
    return Error(400, "no policy named '" + spec.policy + "' is loaded");
  }
  if (req.contains("id")) {
    if (!req["id"].is_string()) return Error(400, "'id' must be a string");
    spec.id = req["id"].get<std::string>();
  }
  if (req.contains("source")) {
    if (!req["source"].is_string()) return Error(400, "'source' must be an IP address string");
    spec.source = net::IpAddress::Parse(req["source"].get<std::string>());
    if (!spec.source) return Error(400, "'source' is not an IP address");
  }
  if (req.contains("token")) {
    if (!req["token"].is_boolean()) return Error(400, "'token' must be true or false");
    spec.with_token = req["token"].get<bool>();
  }
  if (req.contains("ttl_seconds")) {
    if (!req["ttl_seconds"].is_number_integer())
      return Error(400, "'ttl_seconds' must be an integer");
    int64_t ttl = req["ttl_seconds"].get<int64_t>();
    if (ttl < 1 || ttl > 7 * 24 * 3600) return Error(400, "'ttl_seconds' must be 1 to 604800");
    spec.ttl = std::chrono::seconds(ttl);
  }
  if (req.contains("labels")) {
    if (!req["labels"].is_object()) return Error(400, "'labels' must be an object of strings");
    for (const auto& [k, v] : req["labels"].items()) {
      if (!v.is_string()) return Error(400, "label '" + k + "' must be a string");
      spec.labels[k] = v.get<std::string>();
    }
  }
  if (hooks_.make_placeholders) spec.placeholders = hooks_.make_placeholders(spec.policy);
  auto created = sessions_.Create(spec);
  if (!created.ok()) return Error(409, created.status().message());
  const auto& [session, token] = created.value();
  if (hooks_.session_created) hooks_.session_created(session);
  json out = SessionJson(session);
  if (!token.empty()) out["token"] = token;  // shown once; only its hash is kept
  if (!session.placeholders.empty()) {
    json placeholders = json::object();  // shown once too: the sandbox's variables
    for (const auto& p : session.placeholders) placeholders[p.env] = p.value;
    out["placeholders"] = placeholders;
  }
  return {201, out};
}

ControlResponse ControlApi::Handle(const ControlRequest& r) {
  const std::string prefix = "/v1/sessions/";
  if (r.path == "/v1/health") {
    if (r.method != "GET") return Error(405, "use GET");
    bool audit_ok = hooks_.audit_healthy();
    return {audit_ok ? 200 : 503, json{{"status", audit_ok ? "ok" : "audit_unavailable"},
                                       {"audit", audit_ok ? "ok" : "unwritable"},
                                       {"policies", hooks_.policy_names()},
                                       {"sessions", sessions_.size()}}};
  }
  if (r.path == "/v1/sessions") {
    if (r.method == "POST") return CreateSession(r.body);
    if (r.method != "GET") return Error(405, "use GET or POST");
    json list = json::array();
    for (const auto& s : sessions_.List()) list.push_back(SessionJson(s));
    return {200, json{{"sessions", list}}};
  }
  if (r.path.starts_with(prefix)) {
    std::string id = r.path.substr(prefix.size());
    if (r.method == "GET") {
      auto s = sessions_.Get(id);
      if (!s) return Error(404, "no session '" + id + "'");
      return {200, SessionJson(*s)};
    }
    if (r.method == "DELETE") {
      auto s = sessions_.Get(id);
      if (!s || !sessions_.Delete(id)) return Error(404, "no session '" + id + "'");
      if (hooks_.session_ended) hooks_.session_ended(*s, "deleted");
      return {204, nullptr};
    }
    return Error(405, "use GET or DELETE");
  }
  if (r.path == "/v1/reload") {
    if (r.method != "POST") return Error(405, "use POST");
    Status s = hooks_.reload();
    if (!s.ok()) return Error(400, s.message());
    return {200, json{{"status", "reloaded"}, {"policies", hooks_.policy_names()}}};
  }
  if (r.path == "/v1/ca" && hooks_.ca_certificate) {
    if (r.method != "GET") return Error(405, "use GET");
    return {200, json{{"certificate", hooks_.ca_certificate()}}};
  }
  return Error(404, "unknown endpoint " + r.path);
}

}  // namespace airlock::control
