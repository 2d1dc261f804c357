// The credential broker (see broker.h).
#include "gateway/credentials/broker.h"

#include <pthread.h>

#include <random>

namespace airlock::credentials {
namespace {

using std::chrono::seconds;

constexpr seconds kNoExpiryRecheck{300};  // a token without expiry is re-read this often
constexpr seconds kMaxBackoff{60};
constexpr size_t kMaxMinted = 4096;  // per jwt credential; expired ones go first

double Uniform(double lo, double hi) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

}  // namespace

Result<std::unique_ptr<CredentialBroker>> CredentialBroker::Create(
    const std::vector<config::CredentialConfig>& credentials, const SourceOptions& options) {
  std::unique_ptr<CredentialBroker> b(new CredentialBroker());
  for (const auto& c : credentials) {
    auto source = MakeSource(c, options);
    if (!source.ok()) {
      return Status::Error("credential '" + c.name + "': " + source.status().message());
    }
    auto e = std::make_unique<Entry>();
    e->config = c;
    e->source = std::move(source).value();
    b->entries_[c.name] = std::move(e);
  }
  return b;
}

CredentialBroker::~CredentialBroker() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

RefreshEvent CredentialBroker::Refresh(Entry& e, TimePoint now) {
  auto token = e.source->Fetch(Audience{}, now);
  RefreshEvent ev;
  ev.credential = e.config.name;
  std::lock_guard<std::mutex> lk(mu_);
  if (token.ok() && token->expires_at > now) {
    e.token = std::move(token).value();
    e.consecutive_failures = 0;
    ++e.refreshes;
    ev.ok = true;
    if (e.token->expires_at == TimePoint::max()) {
      ev.next_attempt = kNoExpiryRecheck;
    } else {
      auto lifetime = std::chrono::duration_cast<seconds>(e.token->expires_at - now);
      ev.next_attempt = std::max(
          seconds(1), seconds(static_cast<int64_t>(lifetime.count() * Uniform(0.65, 0.75))));
    }
  } else {
    ev.error = token.ok() ? "the fetched token has already expired" : token.status().message();
    ++e.failures;
    int n = std::min(++e.consecutive_failures, 7);
    seconds backoff = std::min(kMaxBackoff, seconds(1LL << (n - 1)));
    ev.next_attempt =
        std::max(seconds(1), seconds(static_cast<int64_t>(backoff.count() * Uniform(0.8, 1.2))));
    if (e.token && e.token->expires_at <= now) e.token.reset();  // past its expiry: serve none
  }
  ev.serving = e.token.has_value();
  if (e.token && e.token->expires_at != TimePoint::max()) ev.expires_at = e.token->expires_at;
  e.next_attempt = now + ev.next_attempt;
  return ev;
}

Status CredentialBroker::Start(Listener listener) {
  listener_ = std::move(listener);
  for (auto& [name, e] : entries_) {
    if (!e->config.shared_token()) continue;
    RefreshEvent ev = Refresh(*e, std::chrono::system_clock::now());
    if (!ev.ok && e->config.source == "static") {
      return Status::Error("credential '" + name + "': " + ev.error);
    }
    listener_(ev);
  }
  refresher_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "al-credentials");
    RefresherLoop();
  });
  return Status::Ok();
}

void CredentialBroker::RefresherLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    TimePoint next = TimePoint::max();
    for (auto& [name, e] : entries_) {
      if (e->config.shared_token()) next = std::min(next, e->next_attempt);
    }
    if (next == TimePoint::max()) {
      wake_.wait(lk, [this] { return stop_; });
      break;
    }
    if (wake_.wait_until(lk, next, [this] { return stop_; })) break;
    TimePoint now = std::chrono::system_clock::now();
    for (auto& [name, e] : entries_) {
      if (!e->config.shared_token() || e->next_attempt > now) continue;
      lk.unlock();
      RefreshEvent ev = Refresh(*e, now);
      listener_(ev);
      lk.lock();
      if (stop_) break;
    }
  }
}

const config::CredentialConfig* CredentialBroker::Find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second->config;
}

Result<Token> CredentialBroker::TokenFor(std::string_view name, const Audience& audience,
                                         TimePoint now) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return Status::Error("unknown credential");
  Entry& e = *it->second;
  std::unique_lock<std::mutex> lk(mu_);
  if (e.config.shared_token()) {
    if (e.token && e.token->expires_at > now) return *e.token;
    return Status::Error("no valid token");
  }
  auto key = std::make_pair(std::string(audience.session), std::string(audience.host));
  if (auto m = e.minted.find(key);
      m != e.minted.end() && m->second.expires_at - now > e.config.ttl / 2) {
    return m->second;
  }
  lk.unlock();
  auto token = e.source->Fetch(audience, now);  // minting is local: no I/O
  lk.lock();
  if (!token.ok()) {
    ++e.failures;
    return token.status();
  }
  ++e.refreshes;
  if (e.minted.size() >= kMaxMinted) {
    std::erase_if(e.minted, [&](const auto& kv) { return kv.second.expires_at <= now; });
    if (e.minted.size() >= kMaxMinted) e.minted.clear();
  }
  e.minted[key] = token.value();
  return token;
}

std::vector<CredentialStatus> CredentialBroker::Statuses() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<CredentialStatus> out;
  for (const auto& [name, e] : entries_) {
    CredentialStatus s{name, e->refreshes, e->failures, std::nullopt};
    if (e->token && e->token->expires_at != TimePoint::max()) s.expires_at = e->token->expires_at;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace airlock::credentials
