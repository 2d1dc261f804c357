// MakeSource: the source a credential's configuration names (see credential_source.h).
#include "gateway/credentials/credential_source.h"

namespace airlock::credentials {

Result<std::unique_ptr<CredentialSource>> MakeSource(const config::CredentialConfig& credential,
                                                     const SourceOptions& options) {
  const std::string& s = credential.source;
  if (s == "exec") return MakeExecSource(credential);
  if (s == "jwt") return MakeJwtSource(credential);
  if (s == "oauth2_client_credentials") return MakeOAuth2Source(credential, options);
  if (s == "github_app") return MakeGitHubAppSource(credential, options);
  if (s == "aws_sigv4") return MakeAwsKeySource(credential);
  return MakeStaticSource(credential);  // the loader admits no other source
}

}  // namespace airlock::credentials
