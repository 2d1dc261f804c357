// Policy YAML v1 parsing and validation. See docs/POLICY.md for the format.
#include "gateway/policy/policy_loader.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>

#include "gateway/config/file_list.h"
#include "gateway/config/yaml_reader.h"
#include "gateway/net/address_class.h"

namespace airlock::policy {
namespace {

using config::MapReader;
using config::YamlContext;

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"};

bool ValidIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '-' || c == '_' || c == '.'));
    if (!ok) return false;
  }
  return true;
}

std::optional<uint16_t> ParsePortNumber(std::string_view s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

class Parser {
 public:
  Parser(YamlContext& ctx, const LoadOptions& options) : ctx_(ctx), options_(options) {}

  std::optional<Policy> Parse(const YAML::Node& root) {
    Policy p;
    p.source = ctx_.file();
    MapReader m(root, "policy", ctx_);
    if (!m.valid()) return std::nullopt;
    if (auto version = m.Get("version", true)) {
      if (!version->IsScalar() || version->Scalar() != "v1") {
        ctx_.Error(*version, "unsupported policy version; this gateway reads version: v1");
      }
    }
    if (auto name = m.Get("name", true)) {
      if (auto s = config::ReadString(*name, ctx_)) {
        if (!ValidIdentifier(*s)) {
          ctx_.Error(*name, "policy name '" + *s +
                                "' must be 1-64 characters of a-z, 0-9, '-', "
                                "'_', '.', starting with a letter or digit");
        }
        p.name = *s;
      }
    }
    if (auto d = m.String("description")) p.description = *d;
    if (auto mode = m.Get("mode")) {
      if (mode->IsScalar() && mode->Scalar() == "enforce") {
        p.mode = Mode::kEnforce;
      } else if (mode->IsScalar() && mode->Scalar() == "report") {
        p.mode = Mode::kReport;
      } else {
        ctx_.Error(*mode, "mode must be 'enforce' or 'report'");
      }
    }
    if (auto egress = m.Get("egress")) ParseEgress(*egress, &p);
    if (auto deny = m.Get("deny")) ParseDeny(*deny, &p);
    if (auto priv = m.Get("private")) ParsePrivate(*priv, &p);
    if (auto limits = m.Get("limits")) ParseLimits(*limits, &p.limits);
    if (auto dns = m.Get("dns")) ParseDns(*dns, &p);
    m.Finish();
    return p;
  }

 private:
  void ParseEgress(const YAML::Node& node, Policy* p) {
    if (!node.IsSequence()) {
      ctx_.Error(node, "egress must be a list of rules");
      return;
    }
    for (const auto& item : node) {
      if (auto rule = ParseRule(item)) p->egress.push_back(std::move(*rule));
    }
  }

  void CheckId(const std::string& id, const YAML::Node& at) {
    auto [it, inserted] = ids_.emplace(id, at.Mark().line + 1);
    if (!inserted) {
      ctx_.Error(at, "duplicate rule id '" + id + "' (first used on line " +
                         std::to_string(it->second) + ")");
    }
  }

  std::optional<EgressRule> ParseRule(const YAML::Node& node) {
    MapReader m(node, "egress rule", ctx_);
    if (!m.valid()) return std::nullopt;
    EgressRule rule;
    if (auto id = m.Get("id", true)) {
      if (auto s = config::ReadString(*id, ctx_)) {
        if (!ValidIdentifier(*s)) {
          ctx_.Error(*id, "rule id '" + *s +
                              "' must be 1-64 characters of a-z, 0-9, '-', '_', "
                              "'.', starting with a letter or digit");
        }
        CheckId(*s, *id);
        rule.id = *s;
      }
    }
    if (auto d = m.String("description")) rule.description = *d;
    if (auto hosts = m.Get("hosts", true)) {
      rule.hosts = ParseHosts(*hosts, SuffixWildcards::kReject);
    }
    std::optional<YAML::Node> protocol_node = m.Get("protocol");
    if (protocol_node) {
      auto protocol =
          protocol_node->IsScalar() ? ParseProtocol(protocol_node->Scalar()) : std::nullopt;
      if (!protocol) {
        ctx_.Error(*protocol_node, "protocol must be 'tls', 'http' or 'tcp'");
      } else {
        rule.protocol = *protocol;
      }
    }
    if (auto ports = m.Get("ports")) {
      rule.ports = ParsePorts(*ports);
    } else if (rule.protocol == Protocol::kTcp) {
      ctx_.Error(node, "egress rule '" + rule.id + "' has protocol tcp and needs ports");
    } else {
      uint16_t port = rule.protocol == Protocol::kHttp ? 80 : 443;
      rule.ports = {{port, port}};
    }
    auto inspect_node = m.Get("inspect");
    if (inspect_node) {
      if (auto b = config::ReadBool(*inspect_node, ctx_)) rule.inspect = *b;
      if (rule.inspect && rule.protocol != Protocol::kTls) {
        ctx_.Error(*inspect_node,
                   "inspect applies to tls rules only (http is always inspected; "
                   "tcp cannot be)");
      }
    }
    if (auto http = m.Get("http")) {
      rule.http = ParseHttp(*http);
      if (rule.protocol == Protocol::kTcp) {
        ctx_.Error(*http,
                   "http constraints cannot apply to a tcp rule; use protocol http, or "
                   "tls with inspect: true");
      } else if (rule.protocol == Protocol::kTls && !rule.inspect) {
        ctx_.Error(*http,
                   "http constraints on a tls rule need inspect: true (the gateway must "
                   "terminate TLS to see requests)");
      }
    }
    if (auto creds = m.Get("credentials")) {
      if (auto list = config::ReadStringList(*creds, ctx_)) {
        for (const auto& [name, at] : *list) {
          if (options_.known_credentials && !options_.known_credentials->contains(name)) {
            std::string known;
            for (const auto& k : *options_.known_credentials)
              known += (known.empty() ? "" : ", ") + k;
            ctx_.Error(at, "unknown credential '" + name +
                               "' (the gateway defines: " + (known.empty() ? "none" : known) + ")");
          }
          rule.credentials.push_back(name);
        }
      }
      if (rule.protocol != Protocol::kTls || !rule.inspect) {
        ctx_.Error(*creds,
                   "credentials are injected only into inspected TLS: the rule needs "
                   "protocol tls and inspect: true (never cleartext)");
      }
    }
    m.Finish();
    return rule;
  }

  std::vector<HostPattern> ParseHosts(const YAML::Node& node, SuffixWildcards wildcards) {
    std::vector<HostPattern> out;
    auto list = config::ReadStringList(node, ctx_);
    if (!list) return out;
    if (list->empty()) ctx_.Error(node, "hosts must list at least one host");
    for (const auto& [text, at] : *list) {
      std::string error;
      if (auto pattern = ParseHostPattern(text, *options_.public_suffixes, wildcards, &error)) {
        out.push_back(std::move(*pattern));
      } else {
        ctx_.Error(at, error);
      }
    }
    return out;
  }

  std::vector<PortRange> ParsePorts(const YAML::Node& node) {
    std::vector<PortRange> out;
    if (!node.IsSequence() || node.size() == 0) {
      ctx_.Error(node,
                 "ports must be a non-empty list of port numbers or ranges (443, "
                 "\"8000-8100\")");
      return out;
    }
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        ctx_.Error(item, "expected a port number or range");
        continue;
      }
      const std::string& s = item.Scalar();
      size_t dash = s.find('-');
      auto first = ParsePortNumber(std::string_view(s).substr(0, dash));
      auto last =
          dash == std::string::npos ? first : ParsePortNumber(std::string_view(s).substr(dash + 1));
      if (!first || !last) {
        ctx_.Error(item, "'" + s + "' is not a port (1-65535) or a range such as 8000-8100");
        continue;
      }
      if (*first > *last) {
        ctx_.Error(item, "port range '" + s + "' is reversed");
        continue;
      }
      out.push_back({*first, *last});
    }
    return out;
  }

  HttpConstraints ParseHttp(const YAML::Node& node) {
    HttpConstraints http;
    MapReader m(node, "http constraints", ctx_);
    if (auto methods = m.Get("methods")) {
      if (auto list = config::ReadStringList(*methods, ctx_)) {
        if (list->empty()) ctx_.Error(*methods, "methods is empty; omit it to allow any method");
        for (const auto& [method, at] : *list) {
          if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end()) {
            ctx_.Error(at, "unknown HTTP method '" + method +
                               "' (expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, "
                               "TRACE, CONNECT, in upper case)");
          } else {
            http.methods.push_back(method);
          }
        }
      }
    }
    if (auto paths = m.Get("paths")) {
      if (auto list = config::ReadStringList(*paths, ctx_)) {
        if (list->empty()) ctx_.Error(*paths, "paths is empty; omit it to allow any path");
        for (const auto& [text, at] : *list) {
          std::string error;
          if (auto glob = PathGlob::Parse(text, &error)) {
            http.paths.push_back(std::move(*glob));
          } else {
            ctx_.Error(at, error);
          }
        }
      }
    }
    m.Finish();
    return http;
  }

  std::optional<net::Cidr> ParseCidr(const YAML::Node& node) {
    auto text = config::ReadString(node, ctx_);
    if (!text) return std::nullopt;
    std::string error;
    auto cidr = net::Cidr::Parse(*text, &error);
    if (!cidr) ctx_.Error(node, error);
    return cidr;
  }

  void ParseDeny(const YAML::Node& node, Policy* p) {
    MapReader m(node, "deny", ctx_);
    if (auto hosts = m.Get("hosts")) p->deny_hosts = ParseHosts(*hosts, SuffixWildcards::kAccept);
    if (auto cidrs = m.Get("cidrs")) {
      if (!cidrs->IsSequence()) {
        ctx_.Error(*cidrs, "deny.cidrs must be a list of CIDRs");
      } else {
        for (const auto& item : *cidrs) {
          if (auto c = ParseCidr(item)) p->deny_cidrs.push_back(*c);
        }
      }
    }
    m.Finish();
  }

  void ParsePrivate(const YAML::Node& node, Policy* p) {
    if (!node.IsSequence()) {
      ctx_.Error(node, "private must be a list of {cidr, ports} entries");
      return;
    }
    for (const auto& item : node) {
      MapReader m(item, "private entry", ctx_);
      if (!m.valid()) continue;
      PrivateRange range;
      range.id = "private-" + std::to_string(p->private_ranges.size() + 1);
      if (auto id = m.Get("id")) {
        if (auto s = config::ReadString(*id, ctx_)) {
          if (!ValidIdentifier(*s)) ctx_.Error(*id, "id '" + *s + "' is not a valid identifier");
          CheckId(*s, *id);
          range.id = *s;
        }
      }
      if (auto cidr_node = m.Get("cidr", true)) {
        if (auto cidr = ParseCidr(*cidr_node)) {
          CheckPrivateCidr(*cidr, *cidr_node);
          range.cidr = *cidr;
        }
      }
      if (auto ports = m.Get("ports", true)) range.ports = ParsePorts(*ports);
      m.Finish();
      p->private_ranges.push_back(std::move(range));
    }
  }

  void CheckPrivateCidr(const net::Cidr& cidr, const YAML::Node& at) {
    for (const auto& never : net::NeverAllowedRanges()) {
      if (cidr.Overlaps(never)) {
        auto cls = net::ClassifyAddress(never.base()).cls;
        ctx_.Error(at, "private range " + cidr.ToString() + " overlaps " + never.ToString() + " (" +
                           std::string(net::AddressClassName(cls)) +
                           "), which can never be allowed");
        return;
      }
    }
    if (cidr.prefix_len() == cidr.base().bit_length() &&
        net::ClassifyAddress(cidr.base()).cls == net::AddressClass::kMetadata) {
      ctx_.Error(at, "private range " + cidr.ToString() +
                         " is a cloud metadata address, which can never be allowed");
    }
  }

  std::optional<uint64_t> ParseSize(const YAML::Node& node) {
    if (!node.IsScalar()) {
      ctx_.Error(node, "expected a size such as 1048576, 512MiB or 1GiB");
      return std::nullopt;
    }
    static const std::map<std::string, uint64_t, std::less<>> kUnits = {{"", 1},
                                                                        {"B", 1},
                                                                        {"KB", 1000},
                                                                        {"MB", 1000000},
                                                                        {"GB", 1000000000},
                                                                        {"KiB", 1ULL << 10},
                                                                        {"MiB", 1ULL << 20},
                                                                        {"GiB", 1ULL << 30},
                                                                        {"TiB", 1ULL << 40}};
    const std::string& s = node.Scalar();
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    auto unit = kUnits.find(std::string_view(end, s.data() + s.size() - end));
    if (end == s.data() || ec != std::errc() || unit == kUnits.end() ||
        value > UINT64_MAX / unit->second || value == 0) {
      ctx_.Error(node, "'" + s + "' is not a positive size (e.g. 1048576, 512MiB, 1GiB)");
      return std::nullopt;
    }
    return value * unit->second;
  }

  void ParseLimits(const YAML::Node& node, Limits* limits) {
    MapReader m(node, "limits", ctx_);
    if (auto v = m.Int("connections", 1, 1000000)) limits->connections = *v;
    if (auto v = m.Int("requests_per_minute", 1, 100000000)) limits->requests_per_minute = *v;
    if (auto v = m.Get("bytes_out")) limits->bytes_out = ParseSize(*v);
    m.Finish();
  }

  void ParseDns(const YAML::Node& node, Policy* p) {
    MapReader m(node, "dns", ctx_);
    if (auto u = m.Get("unknown_names")) {
      if (u->IsScalar() && u->Scalar() == "nxdomain") {
        p->unknown_names = UnknownNames::kNxdomain;
      } else if (u->IsScalar() && u->Scalar() == "refused") {
        p->unknown_names = UnknownNames::kRefused;
      } else {
        ctx_.Error(*u, "dns.unknown_names must be 'nxdomain' or 'refused'");
      }
    }
    m.Finish();
  }

  YamlContext& ctx_;
  const LoadOptions& options_;
  std::map<std::string, int> ids_;  // rule and private-entry ids -> first line
};

std::optional<Policy> LoadFromNode(std::optional<YAML::Node> root, YamlContext& ctx,
                                   const LoadOptions& options, config::Diagnostics* diags) {
  if (!root) return std::nullopt;
  size_t before = diags->size();
  Parser parser(ctx, options);
  auto policy = parser.Parse(*root);
  if (diags->size() != before) return std::nullopt;
  return policy;
}

}  // namespace

bool IsTestFile(const std::string& name) {
  return name.ends_with(".test.yaml") || name.ends_with(".test.yml");
}

std::optional<Policy> LoadPolicyFile(const std::string& path, const LoadOptions& options,
                                     config::Diagnostics* diags) {
  YamlContext ctx(path, diags);
  return LoadFromNode(config::ParseYamlFile(ctx), ctx, options, diags);
}

std::optional<Policy> LoadPolicyText(const std::string& text, const std::string& source,
                                     const LoadOptions& options, config::Diagnostics* diags) {
  YamlContext ctx(source, diags);
  return LoadFromNode(config::ParseYamlString(text, ctx), ctx, options, diags);
}

std::vector<std::string> ListPolicyFiles(const std::vector<std::string>& paths,
                                         config::Diagnostics* diags) {
  return config::CollectFiles(
      paths,
      [](const std::string& name) {
        return (name.ends_with(".yaml") || name.ends_with(".yml")) && !IsTestFile(name);
      },
      diags);
}

std::optional<PolicySet> LoadPolicySet(const std::vector<std::string>& paths,
                                       const LoadOptions& options, config::Diagnostics* diags) {
  size_t before = diags->size();
  std::vector<Policy> policies;
  std::map<std::string, std::string> names;
  for (const auto& file : ListPolicyFiles(paths, diags)) {
    auto policy = LoadPolicyFile(file, options, diags);
    if (!policy) continue;
    auto [it, inserted] = names.emplace(policy->name, file);
    if (!inserted) {
      diags->Add(file, 0, 0, "policy name '" + policy->name + "' is already used by " + it->second);
      continue;
    }
    policies.push_back(std::move(*policy));
  }
  if (diags->size() != before) return std::nullopt;
  return PolicySet::Build(std::move(policies));
}

}  // namespace airlock::policy
