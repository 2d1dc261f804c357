// airlock.yaml parsing.
#include "gateway/config/gateway_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "gateway/config/yaml_reader.h"
#include "gateway/net/ip_address.h"

namespace airlock::config {

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

namespace {

std::optional<GatewayConfig> ReadGatewayConfig(const YAML::Node& root, const std::string& source,
                                               YamlContext& ctx, Diagnostics* diags) {
  size_t before = diags->size();
  GatewayConfig c;
  c.source = source;
  MapReader m(root, "gateway config", ctx);
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

}  // namespace

std::optional<GatewayConfig> LoadGatewayConfig(const std::string& path, Diagnostics* diags) {
  YamlContext ctx(path, diags);
  auto root = ParseYamlFile(ctx);
  if (!root) return std::nullopt;
  return ReadGatewayConfig(*root, path, ctx, diags);
}

std::optional<GatewayConfig> LoadGatewayConfigText(const std::string& text,
                                                   const std::string& source, Diagnostics* diags) {
  YamlContext ctx(source, diags);
  auto root = ParseYamlString(text, ctx);
  if (!root) return std::nullopt;
  return ReadGatewayConfig(*root, source, ctx, diags);
}

std::set<std::string> CredentialNames(const GatewayConfig& config) {
  std::set<std::string> names;
  for (const auto& c : config.credentials) names.insert(c.name);
  return names;
}

}  // namespace airlock::config
