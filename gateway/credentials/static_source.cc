// The static source: a token read from a file (its first line) or the gateway's environment.
// The file is read again at every refresh, so replacing it rotates the token.
#include <cstdlib>
#include <fstream>

#include "gateway/credentials/credential_source.h"

namespace airlock::credentials {
namespace {

class StaticSource : public CredentialSource {
 public:
  explicit StaticSource(const config::CredentialConfig& c) : c_(c) {}

  Result<Token> Fetch(const Audience&, TimePoint) override {
    Token t;
    if (!c_.file.empty()) {
      std::ifstream in(c_.file);
      if (!in || !std::getline(in, t.value)) {
        return Status::Error("cannot read its file " + c_.file);
      }
    } else if (const char* v = std::getenv(c_.env.c_str())) {
      t.value = v;
    }
    while (!t.value.empty() && (t.value.back() == '\r' || t.value.back() == ' ')) {
      t.value.pop_back();
    }
    if (t.value.empty()) {
      return Status::Error((c_.file.empty() ? "environment variable " + c_.env : c_.file) +
                           " holds no token");
    }
    return t;
  }

 private:
  const config::CredentialConfig c_;
};

}  // namespace

std::unique_ptr<CredentialSource> MakeStaticSource(const config::CredentialConfig& credential) {
  return std::make_unique<StaticSource>(credential);
}

}  // namespace airlock::credentials
