// The credential broker (see broker.h).
#include "gateway/credentials/broker.h"

namespace airlock::credentials {

Result<std::unique_ptr<CredentialBroker>> CredentialBroker::Create(
    const std::vector<config::CredentialConfig>& credentials) {
  auto b = std::make_unique<CredentialBroker>();
  for (const auto& c : credentials) {
    auto token = MakeSource(c)->Fetch();
    if (!token.ok()) return token.status();
    b->entries_[c.name] = Entry{c, std::move(token).value()};
  }
  return b;
}

const config::CredentialConfig* CredentialBroker::Find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second.config;
}

std::optional<std::string> CredentialBroker::Token(
    std::string_view name, std::chrono::system_clock::time_point now) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.token.expires_at <= now) return std::nullopt;
  return it->second.token.value;
}

}  // namespace airlock::credentials
