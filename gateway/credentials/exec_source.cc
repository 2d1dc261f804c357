// The exec source: a credential helper prints {"token": ..., "expires_at": ...}; and the AWS key
// source: keys from a file or a credential_process helper. Both block on the refresher thread.
#include <fstream>
#include <sstream>

#include "gateway/credentials/credential_source.h"
#include "gateway/credentials/helper_process.h"
#include "gateway/credentials/token_json.h"

namespace airlock::credentials {
namespace {

class ExecSource : public CredentialSource {
 public:
  explicit ExecSource(const config::CredentialConfig& c) : c_(c) {}

  Result<Token> Fetch(const Audience&, TimePoint) override {
    auto out = RunHelper(c_.command, c_.timeout);
    if (!out.ok()) return out.status();
    return ParseExecOutput(out.value());
  }

 private:
  const config::CredentialConfig c_;
};

class AwsKeySource : public CredentialSource {
 public:
  explicit AwsKeySource(const config::CredentialConfig& c) : c_(c) {}

  Result<Token> Fetch(const Audience&, TimePoint) override {
    if (!c_.command.empty()) {
      auto out = RunHelper(c_.command, c_.timeout);
      if (!out.ok()) return out.status();
      return ParseAwsKeys(out.value());
    }
    std::ifstream in(c_.file);
    if (!in) return Status::Error("cannot read its keys file " + c_.file);
    std::stringstream text;
    text << in.rdbuf();
    return ParseAwsKeys(text.str());
  }

 private:
  const config::CredentialConfig c_;
};

}  // namespace

std::unique_ptr<CredentialSource> MakeExecSource(const config::CredentialConfig& credential) {
  return std::make_unique<ExecSource>(credential);
}

std::unique_ptr<CredentialSource> MakeAwsKeySource(const config::CredentialConfig& credential) {
  return std::make_unique<AwsKeySource>(credential);
}

}  // namespace airlock::credentials
