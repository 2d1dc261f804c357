// CredentialConfig: one credential of airlock.yaml's `credentials:` section (docs/CREDENTIALS.md):
// where its token comes from (its source and that source's keys), the placeholder sandboxes hold
// instead, and where the token is written into a request. No secret is here: sources name the
// file, variable, command or endpoint that yields it. Read with file:line:col diagnostics.
// Plain values; no thread ownership.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gateway/config/yaml_reader.h"
#include "gateway/credentials/value_template.h"

namespace airlock::config {

// One place a credential is written into a request: a header or a query parameter.
struct CredentialInjection {
  std::string header;  // one of header and query is set
  std::string query;
  credentials::ValueTemplate value;
};

struct CredentialConfig {
  std::string name;
  // static | exec | jwt | oauth2_client_credentials | github_app | aws_sigv4
  std::string source;

  std::string file;                  // static: the token (first line); aws_sigv4: keys as JSON
  std::string env;                   // static: the gateway's environment variable holding the token
  std::vector<std::string> command;  // exec, aws_sigv4: argv of a credential helper
  std::chrono::milliseconds timeout{10000};  // exec, oauth2, github_app: per attempt

  std::string key_file;           // jwt (ES256 or RS256 by the key's type), github_app (RS256)
  std::chrono::seconds ttl{300};  // jwt: lifetime of a minted token
  std::string issuer;             // jwt: `iss`, if set
  std::map<std::string, YAML::Node> claims;  // jwt: extra claims (scalars, lists, maps)

  std::string token_url;           // oauth2_client_credentials
  std::string client_id;           // oauth2_client_credentials
  std::string client_secret_file;  // oauth2_client_credentials
  std::string scope;               // oauth2_client_credentials
  std::string audience;            // oauth2_client_credentials

  std::string api_url = "https://api.github.com";  // github_app
  std::string app_id;                              // github_app
  std::string installation_id;                     // github_app
  std::vector<std::string> repositories;           // github_app: narrows the token
  std::map<std::string, std::string> permissions;  // github_app: narrows the token

  size_t max_signed_body = 8u << 20;  // aws_sigv4: largest body hashed for a signature
  std::string secret_placeholder_env = "AWS_SECRET_ACCESS_KEY";  // aws_sigv4

  std::string placeholder_env;     // the sandbox's variable that holds the placeholder
  std::string placeholder_prefix;  // what a placeholder starts with (ghp_, sk-)
  std::vector<CredentialInjection> inject;
  std::vector<std::string> body_json_fields;  // opt-in: top-level JSON fields substituted
  size_t max_body = 1u << 20;                 // largest body substituted (413 over it)

  bool signs_requests() const { return source == "aws_sigv4"; }
  // Fetched once per lifetime by the broker (all but jwt, which mints per session and host).
  bool shared_token() const { return source != "jwt"; }
};

// Reads the credential `name` from `node`; nullopt after reporting every error in it.
std::optional<CredentialConfig> ReadCredential(const std::string& name, const YAML::Node& node,
                                               YamlContext& ctx);

}  // namespace airlock::config
