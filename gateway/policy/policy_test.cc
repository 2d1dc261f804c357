// Loading and running policy tests.
#include "gateway/policy/policy_test.h"

#include <filesystem>

#include "gateway/config/file_list.h"
#include "gateway/config/yaml_reader.h"
#include "gateway/policy/policy_loader.h"

namespace airlock::policy {
namespace {

using config::MapReader;
using config::YamlContext;

std::optional<PolicyTestCase> ParseCase(const YAML::Node& node, YamlContext& ctx) {
  MapReader m(node, "test case", ctx);
  if (!m.valid()) return std::nullopt;
  PolicyTestCase c;
  c.line = node.Mark().line + 1;
  if (auto name = m.String("name", true)) c.name = *name;
  if (auto req_node = m.Get("request", true)) {
    MapReader r(*req_node, "request", ctx);
    if (auto host = r.String("host", true)) c.host = *host;
    if (auto proto = r.Get("protocol")) {
      auto p = proto->IsScalar() ? ParseProtocol(proto->Scalar()) : std::nullopt;
      if (!p) ctx.Error(*proto, "protocol must be 'tls', 'http' or 'tcp'");
      c.protocol = p.value_or(Protocol::kTls);
    }
    if (auto port = r.Int("port", 1, 65535, c.protocol == Protocol::kTcp)) {
      c.port = static_cast<uint16_t>(*port);
    } else {
      c.port = c.protocol == Protocol::kHttp ? 80 : 443;
    }
    c.method = r.String("method");
    c.path = r.String("path");
    if (c.path && !c.method) c.method = "GET";
    if (c.method && !c.path) c.path = "/";
    if (auto addr = r.Get("address")) {
      c.address = addr->IsScalar() ? net::IpAddress::Parse(addr->Scalar()) : std::nullopt;
      if (!c.address) ctx.Error(*addr, "address must be an IPv4 or IPv6 address");
    }
    r.Finish();
  }
  if (auto usage = m.Get("usage")) {
    MapReader u(*usage, "usage", ctx);
    if (auto v = u.Int("connections", 0, INT64_MAX)) c.usage.connections = *v;
    if (auto v = u.Int("requests_last_minute", 0, INT64_MAX)) c.usage.requests_last_minute = *v;
    if (auto v = u.Int("bytes_out", 0, INT64_MAX)) c.usage.bytes_out = *v;
    u.Finish();
  }
  if (auto expect = m.Get("expect", true)) {
    auto v = expect->IsScalar() ? ParseVerdict(expect->Scalar()) : std::nullopt;
    if (!v) ctx.Error(*expect, "expect must be 'allow', 'deny' or 'report'");
    c.expect = v.value_or(Verdict::kDeny);
  }
  c.rule = m.String("rule");
  if (auto reason = m.Get("reason")) {
    c.reason = reason->IsScalar() ? ParseReason(reason->Scalar()) : std::nullopt;
    if (!c.reason) ctx.Error(*reason, "unknown reason code (see docs/POLICY.md, \"Reasons\")");
  }
  m.Finish();
  return c;
}

}  // namespace

std::optional<PolicyTestFile> LoadPolicyTestFile(const std::string& path,
                                                 config::Diagnostics* diags) {
  namespace fs = std::filesystem;
  size_t before = diags->size();
  YamlContext ctx(path, diags);
  auto root = config::ParseYamlFile(ctx);
  if (!root) return std::nullopt;
  PolicyTestFile file;
  file.path = path;
  MapReader m(*root, "policy test file", ctx);
  if (!m.valid()) return std::nullopt;
  fs::path dir = fs::path(path).parent_path();
  if (auto policy = m.String("policy")) {
    file.policy_file = (dir / *policy).string();
  } else {
    std::string name = fs::path(path).filename().string();
    for (std::string_view suffix : {".test.yaml", ".test.yml"}) {
      if (name.ends_with(suffix)) name = name.substr(0, name.size() - suffix.size()) + ".yaml";
    }
    file.policy_file = (dir / name).string();
  }
  if (auto cases = m.Get("cases", true)) {
    if (!cases->IsSequence() || cases->size() == 0) {
      ctx.Error(*cases, "cases must be a non-empty list");
    } else {
      for (const auto& item : *cases) {
        if (auto c = ParseCase(item, ctx)) file.cases.push_back(std::move(*c));
      }
    }
  }
  m.Finish();
  if (diags->size() != before) return std::nullopt;
  return file;
}

std::vector<std::string> ListPolicyTestFiles(const std::vector<std::string>& paths,
                                             config::Diagnostics* diags) {
  return config::CollectFiles(paths, IsTestFile, diags);
}

std::string DescribeOutcome(Verdict verdict, std::optional<Reason> reason,
                            std::optional<std::string_view> rule) {
  std::string s(VerdictName(verdict));
  if (reason) s += " " + std::string(ReasonName(*reason));
  if (rule) s += " (rule " + (rule->empty() ? std::string("-") : std::string(*rule)) + ")";
  return s;
}

std::vector<PolicyTestOutcome> RunPolicyTests(const PolicyTestFile& file, const PolicySet& set,
                                              std::string_view policy_name) {
  std::vector<PolicyTestOutcome> outcomes;
  for (const auto& c : file.cases) {
    Request req;
    req.session = "policy-test";
    req.policy = policy_name;
    req.host = c.host;
    req.port = c.port;
    req.protocol = c.protocol;
    if (c.method) req.http = HttpRequestInfo{*c.method, *c.path};
    req.address = c.address;
    req.usage = c.usage;
    Decision d = Decide(set, req);
    PolicyTestOutcome o;
    o.test = &c;
    o.passed = d.verdict == c.expect && (!c.reason || *c.reason == d.reason) &&
               (!c.rule || *c.rule == d.rule_id());
    o.got = DescribeOutcome(d.verdict, d.reason, d.rule_id());
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

}  // namespace airlock::policy
