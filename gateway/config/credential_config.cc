// Reading one credential of airlock.yaml (see credential_config.h). Each source reads its own
// keys, so a key of another source is reported as unknown, with the keys this one knows.
#include "gateway/config/credential_config.h"

#include <algorithm>
#include <cctype>

namespace airlock::config {
namespace {

bool IsEnvName(std::string_view s) {
  if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool IsToken(std::string_view s, size_t max) {  // header and parameter names, prefixes
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool IsDigits(std::string_view s) {
  return !s.empty() && s.size() <= 20 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

const char* const kSources[] = {"static",     "exec",     "jwt", "oauth2_client_credentials",
                                "github_app", "aws_sigv4"};

// A required https:// URL (the broker sends secrets there; never in cleartext).
void ReadHttpsUrl(MapReader& m, std::string_view key, bool required, std::string* out,
                  YamlContext& ctx) {
  auto node = m.Get(key, required);
  if (!node) return;
  std::string url = ReadString(*node, ctx).value_or("");
  if (url.rfind("https://", 0) != 0 || url.size() <= 8) {
    ctx.Error(*node, std::string(key) +
                         " must be an https:// URL (credentials never travel in "
                         "cleartext)");
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  *out = url;
}

void ReadFileKey(MapReader& m, std::string_view key, bool required, std::string* out,
                 YamlContext& ctx) {
  auto node = m.Get(key, required);
  if (!node) return;
  *out = ReadString(*node, ctx).value_or("");
  if (out->empty() || (*out)[0] != '/') {
    ctx.Error(*node, std::string(key) + " must be an absolute path");
  }
}

void ReadCommand(MapReader& m, bool required, std::vector<std::string>* out, YamlContext& ctx) {
  auto node = m.Get("command", required);
  if (!node) return;
  auto list = ReadStringList(*node, ctx);
  if (!list || list->empty()) {
    ctx.Error(*node, "command must be a non-empty list: [/path/to/helper, arg, ...]");
    return;
  }
  for (auto& [s, n] : *list) out->push_back(s);
  if ((*out)[0].empty() || (*out)[0][0] != '/') {
    ctx.Error((*list)[0].second,
              "the command's program must be an absolute path (no shell, no "
              "PATH lookup)");
  }
}

void ReadTimeout(MapReader& m, CredentialConfig& c) {
  if (auto v = m.Int("timeout_ms", 100, 120000)) c.timeout = std::chrono::milliseconds(*v);
}

void ReadPlaceholder(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  auto placeholder = m.Get("placeholder", true);
  if (!placeholder) return;
  MapReader p(*placeholder, "placeholder", ctx);
  if (auto e = p.Get("env", true)) {
    c.placeholder_env = ReadString(*e, ctx).value_or("");
    if (!IsEnvName(c.placeholder_env)) {
      ctx.Error(*e, "placeholder env '" + c.placeholder_env +
                        "' must be an environment variable name (A-Z, 0-9, _)");
    }
  }
  if (auto prefix = p.Get("prefix")) {
    c.placeholder_prefix = ReadString(*prefix, ctx).value_or("");
    if (!IsToken(c.placeholder_prefix, 16)) {
      ctx.Error(*prefix, "placeholder prefix must be 1-16 letters, digits, '-', '_' or '.'");
    }
  }
  p.Finish();
}

void ReadInject(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  auto inject = m.Get("inject", true);
  if (!inject) return;
  if (!inject->IsSequence() || inject->size() == 0) {
    ctx.Error(*inject, "inject must be a list of {header, value} or {query, value}");
    return;
  }
  for (const auto& item : *inject) {
    MapReader i(item, "inject entry", ctx);
    CredentialInjection injection;
    auto h = i.Get("header");
    auto q = i.Get("query");
    if (h.has_value() == q.has_value() && i.valid()) {
      ctx.Error(item, "an inject entry writes either a `header:` or a `query:` parameter");
    }
    if (h) {
      injection.header = ReadString(*h, ctx).value_or("");
      if (!IsToken(injection.header, 64)) {
        ctx.Error(*h, "'" + injection.header + "' is not a header name");
      }
    }
    if (q) {
      injection.query = ReadString(*q, ctx).value_or("");
      if (!IsToken(injection.query, 64)) {
        ctx.Error(*q, "'" + injection.query + "' is not a query parameter name");
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
      }
    }
    i.Finish();
    c.inject.push_back(std::move(injection));
  }
}

void ReadBody(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  auto body = m.Get("body");
  if (!body) return;
  MapReader b(*body, "body", ctx);
  if (auto fields = b.Get("json_fields", true)) {
    auto list = ReadStringList(*fields, ctx);
    if (!list || list->empty()) {
      ctx.Error(*fields, "json_fields must be a non-empty list of top-level JSON field names");
    } else {
      for (auto& [s, n] : *list) c.body_json_fields.push_back(s);
    }
  }
  if (auto v = b.Int("max_bytes", 1, 64 << 20)) c.max_body = *v;
  b.Finish();
}

void ReadJwt(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  ReadFileKey(m, "key_file", true, &c.key_file, ctx);
  if (auto v = m.Int("ttl_seconds", 30, 86400)) c.ttl = std::chrono::seconds(*v);
  if (auto v = m.String("issuer")) c.issuer = *v;
  auto claims = m.Get("claims");
  if (!claims) return;
  if (!claims->IsMap()) {
    ctx.Error(*claims, "claims must be a mapping of claim names to values");
    return;
  }
  for (const auto& kv : *claims) {
    std::string key = kv.first.as<std::string>("");
    if (key == "sub" || key == "aud" || key == "iat" || key == "exp" || key == "jti" ||
        key == "iss" || key == "nbf") {
      ctx.Error(kv.first, "claim '" + key +
                              "' is set by the gateway (sub: session, aud: destination host, "
                              "iss: issuer:, iat/exp/jti: per token)");
      continue;
    }
    c.claims[key] = kv.second;
  }
}

void ReadOAuth2(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  ReadHttpsUrl(m, "token_url", true, &c.token_url, ctx);
  if (auto v = m.String("client_id", true)) c.client_id = *v;
  ReadFileKey(m, "client_secret_file", true, &c.client_secret_file, ctx);
  if (auto v = m.String("scope")) c.scope = *v;
  if (auto v = m.String("audience")) c.audience = *v;
  ReadTimeout(m, c);
}

void ReadGitHubApp(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  ReadHttpsUrl(m, "api_url", false, &c.api_url, ctx);
  for (auto [key, out] :
       {std::pair{"app_id", &c.app_id}, {"installation_id", &c.installation_id}}) {
    if (auto node = m.Get(key, true)) {
      *out = ReadString(*node, ctx).value_or("");
      if (!IsDigits(*out) || out->size() > 18)
        ctx.Error(*node, std::string(key) + " must be a number");
    }
  }
  ReadFileKey(m, "key_file", true, &c.key_file, ctx);
  if (auto repos = m.Get("repositories")) {
    if (auto list = ReadStringList(*repos, ctx)) {
      for (auto& [s, n] : *list) c.repositories.push_back(s);
    }
  }
  if (auto perms = m.Get("permissions")) {
    if (!perms->IsMap()) {
      ctx.Error(*perms, "permissions must be a mapping like {contents: read, issues: write}");
    } else {
      for (const auto& kv : *perms) {
        std::string level = ReadString(kv.second, ctx).value_or("");
        if (level != "read" && level != "write" && level != "admin") {
          ctx.Error(kv.second, "a permission level is read, write or admin");
        }
        c.permissions[kv.first.as<std::string>("")] = level;
      }
    }
  }
  ReadTimeout(m, c);
}

void ReadAwsSigV4(MapReader& m, CredentialConfig& c, YamlContext& ctx) {
  auto file = m.Get("file");
  if (file) ReadFileKey(m, "file", false, &c.file, ctx);
  ReadCommand(m, false, &c.command, ctx);
  if (file.has_value() == !c.command.empty() && m.valid()) {
    ctx.Error(m.node(),
              "an aws_sigv4 credential reads its keys from `file:` or `command:` (one of them)");
  }
  ReadTimeout(m, c);
  if (auto v = m.Int("max_signed_body_bytes", 0, 1 << 30)) c.max_signed_body = *v;
  if (auto e = m.Get("secret_placeholder_env")) {
    c.secret_placeholder_env = ReadString(*e, ctx).value_or("");
    if (!IsEnvName(c.secret_placeholder_env)) {
      ctx.Error(*e, "secret_placeholder_env must be an environment variable name");
    }
  }
}

}  // namespace

std::optional<CredentialConfig> ReadCredential(const std::string& name, const YAML::Node& node,
                                               YamlContext& ctx) {
  CredentialConfig c;
  c.name = name;
  if (!IsToken(name, 64) || name.find('.') != std::string::npos) {
    ctx.Error(node, "credential name '" + name + "' must be 1-64 letters, digits, '-' or '_'");
  }
  std::string what = "credential '" + name + "'";
  if (node.IsMap() && node["source"] && node["source"].IsScalar()) {
    what += " (source: " + node["source"].Scalar() + ")";
  }
  MapReader m(node, what, ctx);
  if (!m.valid()) return std::nullopt;
  if (auto source = m.Get("source", true)) {
    c.source = ReadString(*source, ctx).value_or("");
    if (std::find(std::begin(kSources), std::end(kSources), c.source) == std::end(kSources)) {
      ctx.Error(*source, "credential source '" + c.source +
                             "' is not one of static, exec, jwt, oauth2_client_credentials, "
                             "github_app, aws_sigv4");
      c.source.clear();
    }
  }
  if (c.source.empty()) {  // still check what every source shares
    ReadPlaceholder(m, c, ctx);
    ReadInject(m, c, ctx);
    return c;
  }
  if (c.source == "static") {
    auto file = m.Get("file");
    auto env = m.Get("env");
    if (file) c.file = ReadString(*file, ctx).value_or("");
    if (env) c.env = ReadString(*env, ctx).value_or("");
    if (file.has_value() == env.has_value()) {
      ctx.Error(node, "a static credential reads its token from `file:` or `env:` (one of them)");
    }
  } else if (c.source == "exec") {
    ReadCommand(m, true, &c.command, ctx);
    ReadTimeout(m, c);
  } else if (c.source == "jwt") {
    ReadJwt(m, c, ctx);
  } else if (c.source == "oauth2_client_credentials") {
    ReadOAuth2(m, c, ctx);
  } else if (c.source == "github_app") {
    ReadGitHubApp(m, c, ctx);
  } else {
    ReadAwsSigV4(m, c, ctx);
  }
  ReadPlaceholder(m, c, ctx);
  if (!c.signs_requests()) {
    ReadInject(m, c, ctx);
    ReadBody(m, c, ctx);
  }
  m.Finish();
  return c;
}

}  // namespace airlock::config
