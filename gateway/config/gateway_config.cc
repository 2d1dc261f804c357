// airlock.yaml parsing.
#include "gateway/config/gateway_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "gateway/config/yaml_reader.h"
#include "gateway/net/ip_address.h"

namespace airlock::config {
namespace {

bool IsEnvName(std::string_view s) {
  if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool IsToken(std::string_view s, size_t max) {  // header names, credential names, prefixes
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

std::optional<CredentialConfig> ReadCredential(const std::string& name, const YAML::Node& node,
                                               YamlContext& ctx) {
  CredentialConfig c;
  c.name = name;
  MapReader m(node, "credential '" + name + "'", ctx);
  if (!m.valid()) return std::nullopt;
  bool ok = true;
  if (!IsToken(name, 64)) {
    ctx.Error(node, "credential name '" + name + "' must be 1-64 letters, digits, '-' or '_'");
    ok = false;
  }
  if (auto source = m.Get("source", true)) {
    c.source = ReadString(*source, ctx).value_or("");
    if (c.source != "static") {
      ctx.Error(*source, "credential source '" + c.source +
                             "' is not supported by this gateway (supported: static)");
      ok = false;
    }
  } else {
    ok = false;
  }
  auto file = m.Get("file");
  auto env = m.Get("env");
  if (file) c.file = ReadString(*file, ctx).value_or("");
  if (env) c.env = ReadString(*env, ctx).value_or("");
  if (file.has_value() == env.has_value()) {
    ctx.Error(node, "a static credential reads its token from `file:` or `env:` (one of them)");
    ok = false;
  }
  if (auto placeholder = m.Get("placeholder", true)) {
    MapReader p(*placeholder, "placeholder", ctx);
    if (auto e = p.Get("env", true)) {
      c.placeholder_env = ReadString(*e, ctx).value_or("");
      if (!IsEnvName(c.placeholder_env)) {
        ctx.Error(*e, "placeholder env '" + c.placeholder_env +
                          "' must be an environment variable name (A-Z, 0-9, _)");
        ok = false;
      }
    }
    if (auto prefix = p.Get("prefix")) {
      c.placeholder_prefix = ReadString(*prefix, ctx).value_or("");
      if (!IsToken(c.placeholder_prefix, 16)) {
        ctx.Error(*prefix, "placeholder prefix must be 1-16 letters, digits, '-' or '_'");
        ok = false;
      }
    }
    p.Finish();
  } else {
    ok = false;
  }
  if (auto inject = m.Get("inject", true)) {
    if (!inject->IsSequence() || inject->size() == 0) {
      ctx.Error(*inject, "inject must be a list of {header, value}");
      ok = false;
    } else {
      for (const auto& item : *inject) {
        MapReader i(item, "inject entry", ctx);
        CredentialInjection injection;
        if (auto h = i.Get("header", true)) {
          injection.header = ReadString(*h, ctx).value_or("");
          if (!IsToken(injection.header, 64)) {
            ctx.Error(*h, "'" + injection.header + "' is not a header name");
            ok = false;
          }
        }
        if (auto v = i.Get("value", true)) {
          std::string error;
          auto t = credentials::ParseValueTemplate(ReadString(*v, ctx).value_or(""), &error);
          if (t) {
            injection.value = *t;
          } else {
            ctx.Error(*v, error +
                              " (e.g. \"Bearer {token}\", "
                              "\"Basic {base64(x-access-token:{token})}\")");
            ok = false;
          }
        }
        i.Finish();
        c.inject.push_back(std::move(injection));
      }
    }
  } else {
    ok = false;
  }
  m.Finish();
  if (!ok) return std::nullopt;
  return c;
}

}  // namespace

std::optional<HostPort> ParseHostPort(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // IPv6 needs brackets
  }
  if (!net::IpAddress::Parse(host)) return std::nullopt;
  int p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
    return std::nullopt;
  }
  return HostPort{std::string(host), static_cast<uint16_t>(p)};
}

std::optional<GatewayConfig> LoadGatewayConfig(const std::string& path, Diagnostics* diags) {
  size_t before = diags->size();
  YamlContext ctx(path, diags);
  auto root = ParseYamlFile(ctx);
  if (!root) return std::nullopt;
  GatewayConfig c;
  c.source = path;
  MapReader m(*root, "gateway config", ctx);
  if (!m.valid()) return std::nullopt;
  auto host_port = [&](const YAML::Node& n) -> std::optional<HostPort> {
    auto s = ReadString(n, ctx);
    if (!s) return std::nullopt;
    auto hp = ParseHostPort(*s);
    if (!hp) ctx.Error(n, "'" + *s + "' is not an address:port (e.g. 127.0.0.1:3128, [::1]:3128)");
    return hp;
  };
  auto ms = [](int64_t v) { return std::chrono::milliseconds(v); };
  if (auto listen = m.Get("listen")) {
    MapReader l(*listen, "listen", ctx);
    if (auto n = l.Get("proxy")) {
      if (auto hp = host_port(*n)) c.proxy = *hp;
    }
    if (auto s = l.String("control")) c.control_socket = *s;
    if (auto n = l.Get("metrics")) c.metrics = host_port(*n);
    if (auto n = l.Get("dns")) c.dns = host_port(*n);
    if (auto n = l.Get("transparent")) c.transparent = host_port(*n);
    l.Finish();
  }
  if (auto v = m.Int("workers", 0, 256)) c.workers = static_cast<int>(*v);
  if (auto s = m.String("state_dir")) c.state_dir = *s;
  if (auto s = m.String("policy_dir")) c.policy_dir = *s;
  if (auto audit = m.Get("audit")) {
    MapReader a(*audit, "audit", ctx);
    if (auto s = a.String("path")) c.audit_path = *s;
    if (auto v = a.Int("rotate_bytes", 4096, INT64_MAX)) c.audit_rotate_bytes = *v;
    if (auto v = a.Int("sync_interval_ms", 1, 60000)) c.audit_sync_interval = ms(*v);
    if (auto s = a.String("hmac_key_file")) c.audit_hmac_key_file = *s;
    a.Finish();
  }
  if (auto resolver = m.Get("resolver")) {
    MapReader r(*resolver, "resolver", ctx);
    if (auto servers = r.Get("servers")) {
      if (auto list = ReadStringList(*servers, ctx)) {
        for (const auto& [s, at] : *list) {
          if (!ParseHostPort(s)) ctx.Error(at, "'" + s + "' is not an address:port");
          c.resolver_servers.push_back(s);
        }
      }
    }
    if (auto v = r.Int("timeout_ms", 10, 60000)) c.resolver_timeout = ms(*v);
    if (auto v = r.Int("max_ttl_seconds", 0, 86400)) c.resolver_max_ttl = std::chrono::seconds(*v);
    r.Finish();
  }
  if (auto dns = m.Get("dns")) {
    MapReader r(*dns, "dns", ctx);
    if (auto v = r.Int("answer_ttl_seconds", 0, 3600)) c.dns_answer_ttl = static_cast<uint32_t>(*v);
    if (auto v = r.Int("queries_per_second", 1, 100000)) {
      c.dns_queries_per_second = static_cast<uint32_t>(*v);
    }
    r.Finish();
  }
  if (auto tls = m.Get("tls")) {
    MapReader t(*tls, "tls", ctx);
    auto cert = t.Get("ca_cert");
    auto key = t.Get("ca_key");
    if (cert) c.tls_ca_cert = ReadString(*cert, ctx).value_or("");
    if (key) c.tls_ca_key = ReadString(*key, ctx).value_or("");
    if (cert.has_value() != key.has_value()) {
      ctx.Error(cert ? *cert : *key,
                "tls: ca_cert and ca_key go together; give both, or neither to have the gateway "
                "generate its CA in state_dir");
    }
    if (auto s = t.String("upstream_ca_file")) c.tls_upstream_ca_file = *s;
    if (auto v = t.Int("leaf_validity_hours", 1, 24 * 30))
      c.tls_leaf_validity = std::chrono::hours(*v);
    if (auto v = t.Int("leaf_cache_size", 16, 1000000)) c.tls_leaf_cache_size = *v;
    t.Finish();
  }
  if (auto creds = m.Get("credentials")) {
    if (!creds->IsMap()) {
      ctx.Error(*creds, "credentials must be a mapping of names to credentials");
    } else {
      for (const auto& entry : *creds) {
        std::string name = entry.first.as<std::string>("");
        if (auto cred = ReadCredential(name, entry.second, ctx)) c.credentials.push_back(*cred);
      }
    }
  }
  if (auto limits = m.Get("limits")) {
    MapReader l(*limits, "limits", ctx);
    if (auto v = l.Int("max_request_line", 256, 1 << 20)) c.max_request_line = *v;
    if (auto v = l.Int("max_head_bytes", 1024, 1 << 22)) c.max_head_bytes = *v;
    if (auto v = l.Int("max_headers", 8, 10000)) c.max_headers = *v;
    if (auto v = l.Int("header_timeout_ms", 100, 600000)) c.header_timeout = ms(*v);
    if (auto v = l.Int("idle_timeout_ms", 100, 86400000)) c.idle_timeout = ms(*v);
    if (auto v = l.Int("connect_timeout_ms", 100, 600000)) c.connect_timeout = ms(*v);
    if (auto v = l.Int("sniff_timeout_ms", 10, 60000)) c.sniff_timeout = ms(*v);
    if (auto v = l.Int("drain_timeout_ms", 0, 600000)) c.drain_timeout = ms(*v);
    l.Finish();
  }
  m.Finish();
  if (diags->size() != before) return std::nullopt;
  return c;
}

std::set<std::string> CredentialNames(const GatewayConfig& config) {
  std::set<std::string> names;
  for (const auto& c : config.credentials) names.insert(c.name);
  return names;
}

}  // namespace airlock::config
