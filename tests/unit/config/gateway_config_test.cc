// airlock.yaml: defaults, every key, and errors with positions.
#include "gateway/config/gateway_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

namespace airlock::config {
namespace {

// The files Write() made, removed when the test binary exits.
struct TempFiles {
  std::vector<std::filesystem::path> paths;
  ~TempFiles() {
    for (const auto& p : paths) std::filesystem::remove(p);
  }
};

std::string Write(const std::string& text) {
  static TempFiles files;
  auto path =
      std::filesystem::temp_directory_path() / ("airlock-cfg-" + std::to_string(getpid()) + "-" +
                                                std::to_string(files.paths.size()) + ".yaml");
  std::ofstream(path) << text;
  files.paths.push_back(path);
  return path.string();
}

TEST(GatewayConfig, ReadsEveryKey) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write(R"(listen:
  proxy: "[::1]:8080"
  control: /tmp/c.sock
  metrics: 127.0.0.1:9464
workers: 3
state_dir: /s
policy_dir: /p
audit: {path: /a/log.jsonl, rotate_bytes: 1048576, sync_interval_ms: 50, hmac_key_file: /k}
resolver: {servers: ["127.0.0.53:53"], timeout_ms: 700, max_ttl_seconds: 30}
limits: {max_request_line: 4096, max_head_bytes: 16384, max_headers: 50, header_timeout_ms: 2000,
         idle_timeout_ms: 60000, connect_timeout_ms: 3000, drain_timeout_ms: 1000}
)"),
                             &d);
  ASSERT_TRUE(c) << d.ToString();
  EXPECT_EQ(c->proxy.host, "::1");
  EXPECT_EQ(c->proxy.port, 8080);
  EXPECT_EQ(c->metrics->port, 9464);
  EXPECT_EQ(c->workers, 3);
  EXPECT_EQ(c->audit_rotate_bytes, 1048576u);
  EXPECT_EQ(c->resolver_servers, std::vector<std::string>{"127.0.0.53:53"});
  EXPECT_EQ(c->header_timeout.count(), 2000);
}

TEST(GatewayConfig, ErrorsHavePositions) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write("listen:\n  proxy: localhost:3128\nworkerz: 2\nlimits:\n"
                                   "  max_headers: 1\n"),
                             &d);
  EXPECT_FALSE(c);
  std::string all = d.ToString();
  EXPECT_NE(all.find(":2:10: error: 'localhost:3128' is not an address:port"), std::string::npos)
      << all;
  EXPECT_NE(all.find(":3:1: error: unknown key 'workerz'"), std::string::npos) << all;
  EXPECT_NE(all.find(":5:16: error: value 1 is out of range"), std::string::npos) << all;
}

TEST(GatewayConfig, TlsAndCredentials) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write(R"(tls:
  ca_cert: /ca.crt
  ca_key: /ca.key
  upstream_ca_file: /roots.pem
  leaf_validity_hours: 2
credentials:
  github:
    source: static
    file: /etc/airlock/secrets/github-token
    placeholder: {env: GITHUB_TOKEN, prefix: ghp_}
    inject:
      - header: Authorization
        value: "Bearer {token}"
)"),
                             &d);
  ASSERT_TRUE(c) << d.ToString();
  EXPECT_EQ(c->tls_ca_cert, "/ca.crt");
  EXPECT_EQ(c->tls_upstream_ca_file, "/roots.pem");
  EXPECT_EQ(c->tls_leaf_validity, std::chrono::hours(2));
  ASSERT_EQ(c->credentials.size(), 1u);
  const CredentialConfig& g = c->credentials[0];
  EXPECT_EQ(g.name, "github");
  EXPECT_EQ(g.file, "/etc/airlock/secrets/github-token");
  EXPECT_EQ(g.placeholder_env, "GITHUB_TOKEN");
  EXPECT_EQ(g.placeholder_prefix, "ghp_");
  ASSERT_EQ(g.inject.size(), 1u);
  EXPECT_EQ(g.inject[0].header, "Authorization");
  EXPECT_EQ(g.inject[0].value.Render("t"), "Bearer t");
  EXPECT_EQ(CredentialNames(*c), std::set<std::string>{"github"});
}

TEST(GatewayConfig, CredentialErrorsHavePositions) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write(R"(tls:
  ca_cert: /ca.crt
credentials:
  a:
    source: vault
    env: X
    placeholder: {env: lower-case}
    inject:
      - header: Authorization
        value: "Bearer token"
  b:
    source: static
    placeholder: {env: B}
    inject: []
)"),
                             &d);
  EXPECT_FALSE(c);
  std::string all = d.ToString();
  for (const char* want :
       {":2:12: error: tls: ca_cert and ca_key go together",
        ":5:13: error: credential source 'vault' is not one of static, exec, jwt",
        ":7:24: error: placeholder env 'lower-case' must be an environment variable name",
        ":10:16: error: a value template needs exactly one {token}",
        ":12:5: error: a static credential reads its token from `file:` or `env:`",
        ":14:13: error: inject must be a list"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
}

TEST(GatewayConfig, EverySource) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write(R"(credentials:
  helper:
    source: exec
    command: [/usr/local/bin/token-helper, --role, ci]
    timeout_ms: 2000
    placeholder: {env: HELPER_TOKEN}
    inject: [{query: api_key, value: "{token}"}]
  minted:
    source: jwt
    key_file: /etc/airlock/jwt.pem
    ttl_seconds: 120
    issuer: airlock
    claims: {tenant: acme, tier: 3, quoted: "3"}
    placeholder: {env: SVC_TOKEN}
    inject: [{header: Authorization, value: "Bearer {token}"}]
    body: {json_fields: [api_key], max_bytes: 4096}
  oauth:
    source: oauth2_client_credentials
    token_url: https://auth.example.test/oauth/token/
    client_id: airlock
    client_secret_file: /etc/airlock/oauth-secret
    scope: read write
    audience: https://api.example.test
    placeholder: {env: API_TOKEN, prefix: sk-}
    inject: [{header: Authorization, value: "Bearer {token}"}]
  app:
    source: github_app
    api_url: https://github.example.test/api/v3
    app_id: 12345
    installation_id: 678
    key_file: /etc/airlock/app.pem
    repositories: [airlock]
    permissions: {contents: read}
    placeholder: {env: GITHUB_TOKEN, prefix: ghs_}
    inject: [{header: Authorization, value: "token {token}"}]
  aws:
    source: aws_sigv4
    command: [/usr/local/bin/aws-keys]
    max_signed_body_bytes: 1048576
    placeholder: {env: AWS_ACCESS_KEY_ID, prefix: AKIA}
)"),
                             &d);
  ASSERT_TRUE(c) << d.ToString();
  ASSERT_EQ(c->credentials.size(), 5u);
  std::map<std::string, CredentialConfig> by;
  for (const auto& x : c->credentials) by[x.name] = x;
  EXPECT_EQ(by["helper"].command.size(), 3u);
  EXPECT_EQ(by["helper"].timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(by["helper"].inject[0].query, "api_key");
  EXPECT_FALSE(by["minted"].shared_token());
  EXPECT_EQ(by["minted"].claims.size(), 3u);
  EXPECT_EQ(by["minted"].body_json_fields, std::vector<std::string>{"api_key"});
  EXPECT_EQ(by["minted"].max_body, 4096u);
  EXPECT_EQ(by["oauth"].token_url, "https://auth.example.test/oauth/token");
  EXPECT_EQ(by["oauth"].scope, "read write");
  EXPECT_EQ(by["app"].api_url, "https://github.example.test/api/v3");
  EXPECT_EQ(by["app"].permissions.at("contents"), "read");
  EXPECT_TRUE(by["aws"].signs_requests());
  EXPECT_EQ(by["aws"].secret_placeholder_env, "AWS_SECRET_ACCESS_KEY");
  EXPECT_TRUE(by["aws"].inject.empty());
}

TEST(GatewayConfig, SourceErrorsHavePositions) {
  Diagnostics d;
  auto c = LoadGatewayConfig(Write(R"(credentials:
  helper:
    source: exec
    command: [token-helper]
    file: /x
    placeholder: {env: A}
    inject: [{header: Authorization, query: key, value: "{token}"}]
  minted:
    source: jwt
    key_file: jwt.pem
    claims: {sub: me}
    placeholder: {env: B}
    inject: [{header: Authorization, value: "Bearer {token}"}]
  oauth:
    source: oauth2_client_credentials
    token_url: http://auth.example.test/token
    client_id: airlock
    client_secret_file: /s
    placeholder: {env: C}
    inject: [{header: Authorization, value: "Bearer {token}"}]
  app:
    source: github_app
    app_id: twelve
    installation_id: 1
    key_file: /k
    permissions: {contents: all}
    placeholder: {env: D}
    inject: [{header: Authorization, value: "token {token}"}]
  aws:
    source: aws_sigv4
    placeholder: {env: E}
    inject: [{header: Authorization, value: "{token}"}]
)"),
                             &d);
  EXPECT_FALSE(c);
  std::string all = d.ToString();
  for (const char* want :
       {":4:15: error: the command's program must be an absolute path",
        ":5:5: error: unknown key 'file' in credential 'helper' (source: exec)",
        ":7:14: error: an inject entry writes either a `header:` or a `query:`",
        ":10:15: error: key_file must be an absolute path",
        ":11:14: error: claim 'sub' is set by the gateway",
        ":16:16: error: token_url must be an https:// URL",
        ":23:13: error: app_id must be a number",
        ":26:29: error: a permission level is read, write or admin",
        ":30:5: error: an aws_sigv4 credential reads its keys from `file:` or `command:`",
        ":32:5: error: unknown key 'inject' in credential 'aws' (source: aws_sigv4)"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
}

TEST(GatewayConfig, HostPort) {
  EXPECT_TRUE(ParseHostPort("127.0.0.1:1"));
  EXPECT_TRUE(ParseHostPort("[fd00::1]:443"));
  EXPECT_FALSE(ParseHostPort("fd00::1:443"));
  EXPECT_FALSE(ParseHostPort("127.0.0.1:0"));
  EXPECT_FALSE(ParseHostPort("127.0.0.1:65536"));
  EXPECT_FALSE(ParseHostPort("127.0.0.1"));
}

}  // namespace
}  // namespace airlock::config
