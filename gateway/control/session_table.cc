// Sessions: creation, lookup, expiry, persistence.
#include "gateway/control/session_table.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gateway/credentials/placeholder.h"

#include "gateway/crypto/digest.h"
#include "gateway/crypto/random.h"
#include "gateway/oplog/operator_log.h"

namespace airlock::control {
namespace {

using json = nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::seconds;
using std::chrono::system_clock;

int64_t ToUnix(system_clock::time_point t) {
  return duration_cast<seconds>(t.time_since_epoch()).count();
}
system_clock::time_point FromUnix(int64_t s) { return system_clock::time_point(seconds(s)); }

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

// A string field of a persisted session: absent is empty, another type is damage.
std::optional<std::string> StringField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::string();
  if (!it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// A time in seconds since 1970 that the system clock can hold (it counts nanoseconds in 64
// bits, up to 2262): an edited state file must not overflow it.
std::optional<int64_t> TimeField(const json& j, const char* key) {
  constexpr int64_t kLatest = 9'000'000'000;  // in 2255
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(kLatest)) {
    return std::nullopt;
  }
  int64_t v = it->get<int64_t>();
  if (v < 0 || v > kLatest) return std::nullopt;
  return v;
}

// A session as Persist() wrote it, every field checked: the state file may be damaged or edited,
// and reading it back must never throw. nullopt drops the session.
std::optional<Session> SessionFromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  Session s;
  auto id = StringField(j, "id");
  auto policy = StringField(j, "policy");
  auto source = StringField(j, "source");
  auto token = StringField(j, "token_sha256");
  auto created = TimeField(j, "created");
  auto expires = TimeField(j, "expires");
  if (!id || !ValidId(*id) || !policy || !source || !token || !created || !expires) {
    return std::nullopt;
  }
  // A stored token hash is 64 hex digits or absent (FindByToken compares 64 bytes).
  if (!token->empty() && token->size() != 64) return std::nullopt;
  s.id = *id;
  s.policy = *policy;
  if (!source->empty()) {
    s.source = net::IpAddress::Parse(*source);
    if (!s.source) return std::nullopt;
  }
  s.token_sha256 = *token;
  s.created = FromUnix(*created);
  s.expires = FromUnix(*expires);
  if (auto labels = j.find("labels"); labels != j.end()) {
    if (!labels->is_object()) return std::nullopt;
    for (const auto& [k, v] : labels->items()) {
      if (!v.is_string()) return std::nullopt;
      s.labels[k] = v.get<std::string>();
    }
  }
  if (auto list = j.find("placeholders"); list != j.end()) {
    if (!list->is_array()) return std::nullopt;
    for (const auto& p : *list) {
      if (!p.is_object()) return std::nullopt;
      auto credential = StringField(p, "credential");
      auto env = StringField(p, "env");
      auto value = StringField(p, "value");
      if (!credential || !env || !value) return std::nullopt;
      s.placeholders.push_back({*credential, *env, *value});
    }
  }
  return s;
}

}  // namespace

uint64_t SessionUsage::RequestsLastMinute(system_clock::time_point now) {
  std::lock_guard<std::mutex> lk(window_mu);
  int64_t minute = duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
  if (minute != window_minute) {
    last_minute = minute == window_minute + 1 ? this_minute : 0;
    this_minute = 0;
    window_minute = minute;
  }
  // Weight the previous minute by the part of it still inside the 60-second window.
  double into = static_cast<double>(ToUnix(now) % 60) / 60.0;
  return this_minute + static_cast<uint64_t>(static_cast<double>(last_minute) * (1.0 - into));
}

void SessionUsage::CountRequest(system_clock::time_point now) {
  RequestsLastMinute(now);  // rolls the window
  std::lock_guard<std::mutex> lk(window_mu);
  ++this_minute;
}

SessionTable::SessionTable(std::string state_file, const Clock& clock)
    : state_file_(std::move(state_file)), clock_(clock) {}

Result<size_t> SessionTable::Load() {
  if (state_file_.empty() || !std::filesystem::exists(state_file_)) return size_t{0};
  std::ifstream in(state_file_, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status::Error(state_file_ + ": cannot read");
  return Restore(text);
}

Result<size_t> SessionTable::Restore(std::string_view text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("sessions") ||
      !doc["sessions"].is_array()) {
    return Status::Error(state_file_ + ": not a session table");
  }
  std::unique_lock lk(mu_);
  auto now = clock_.Now();
  size_t damaged = 0;
  for (const auto& j : doc["sessions"]) {
    std::optional<Session> s = SessionFromJson(j);
    if (!s) {
      ++damaged;
    } else if (s->expires > now && !sessions_.count(s->id)) {
      Index(*s);
      sessions_[s->id] = std::move(*s);
    }
  }
  return damaged;
}

Status SessionTable::Persist() const {
  if (state_file_.empty()) return Status::Ok();
  Status written = WriteStateFile();
  if (!written.ok()) {
    oplog::Log(oplog::Level::kError, "session.persist_failed",
               {oplog::F("file", state_file_), oplog::F("error", written.message()),
                oplog::F("effect", "sessions changed since are lost if the gateway restarts")});
  }
  return written;
}

Status SessionTable::WriteStateFile() const {
  json list = json::array();
  for (const auto& [id, s] : sessions_) {
    json j = {{"id", s.id},
              {"policy", s.policy},
              {"token_sha256", s.token_sha256},
              {"created", ToUnix(s.created)},
              {"expires", ToUnix(s.expires)},
              {"labels", s.labels}};
    if (s.source) j["source"] = s.source->ToString();
    for (const auto& p : s.placeholders) {
      j["placeholders"].push_back(
          {{"credential", p.credential}, {"env", p.env}, {"value", p.value}});
    }
    list.push_back(j);
  }
  std::string tmp = state_file_ + ".tmp";
  {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Status::Error("cannot write " + tmp + ": " + std::strerror(errno));
    std::string data = json{{"sessions", list}}.dump(2) + "\n";
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              fsync(fd) == 0;
    const int error = errno;
    ::close(fd);
    if (!ok) return Status::Error("cannot write " + tmp + ": " + std::strerror(error));
  }
  if (std::rename(tmp.c_str(), state_file_.c_str()) != 0) {
    return Status::Error("cannot replace " + state_file_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Result<std::pair<Session, std::string>> SessionTable::Create(const SessionSpec& spec) {
  Session s;
  s.id = spec.id.empty() ? "s-" + crypto::RandomHex(8) : spec.id;
  if (!ValidId(s.id)) {
    return Status::Error("session id must be 1-64 characters of a-z, 0-9, '-', '_'");
  }
  if (spec.ttl.count() <= 0) return Status::Error("ttl must be positive");
  if (!spec.source && !spec.with_token) {
    return Status::Error("a session needs a source address, a proxy token, or both");
  }
  s.policy = spec.policy;
  s.source = spec.source;
  s.labels = spec.labels;
  s.placeholders = spec.placeholders;
  s.created = clock_.Now();
  s.expires = s.created + spec.ttl;
  std::string token;
  if (spec.with_token) {
    token = crypto::RandomHex(24);
    s.token_sha256 = crypto::Sha256Hex(token);
  }
  std::unique_lock lk(mu_);
  if (sessions_.count(s.id)) return Status::Error("session '" + s.id + "' already exists");
  if (s.source) {
    // An expired session no longer holds its address, though the next sweep (Expire) has yet
    // to end it: a sandbox that reuses the address at once must not be refused.
    for (const auto& [id, other] : sessions_) {
      if (other.source && *other.source == *s.source && other.expires > s.created) {
        return Status::Error("source address " + s.source->ToString() + " belongs to session '" +
                             id + "'");
      }
    }
  }
  sessions_[s.id] = s;
  if (Status st = Persist(); !st.ok()) {
    sessions_.erase(s.id);
    return st;
  }
  Index(s);
  return std::make_pair(s, token);
}

bool SessionTable::Delete(const std::string& id) {
  std::unique_lock lk(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return false;
  Unindex(it->second);
  sessions_.erase(it);
  (void)Persist();
  return true;
}

std::optional<Session> SessionTable::Get(const std::string& id) const {
  std::shared_lock lk(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.expires <= clock_.Now()) return std::nullopt;
  return it->second;
}

std::vector<Session> SessionTable::List() const {
  std::shared_lock lk(mu_);
  std::vector<Session> out;
  for (const auto& [id, s] : sessions_) out.push_back(s);
  return out;
}

size_t SessionTable::size() const {
  std::shared_lock lk(mu_);
  return sessions_.size();
}

std::optional<Session> SessionTable::FindBySource(const net::IpAddress& source) const {
  std::shared_lock lk(mu_);
  auto now = clock_.Now();
  for (const auto& [id, s] : sessions_) {
    if (s.source && *s.source == source && s.expires > now) return s;
  }
  return std::nullopt;
}

std::optional<Session> SessionTable::FindByToken(const std::string& id,
                                                 const std::string& token) const {
  auto s = Get(id);
  if (!s || s->token_sha256.empty()) return std::nullopt;
  std::string h = crypto::Sha256Hex(token);
  if (s->token_sha256.size() != h.size()) return std::nullopt;
  if (CRYPTO_memcmp(h.data(), s->token_sha256.data(), h.size()) != 0) return std::nullopt;
  return s;
}

const Placeholder* Session::PlaceholderFor(std::string_view credential) const {
  for (const auto& p : placeholders) {
    if (p.credential == credential) return &p;
  }
  return nullptr;
}

void SessionTable::Index(const Session& s) {
  for (const auto& p : s.placeholders) {
    std::string key = credentials::PlaceholderKey(p.value);
    placeholder_filter_.Add(key);
    placeholders_[std::move(key)] = {s.id, p.credential};
  }
}

void SessionTable::Unindex(const Session& s) {
  if (s.placeholders.empty()) return;
  for (const auto& p : s.placeholders) placeholders_.erase(credentials::PlaceholderKey(p.value));
  std::vector<std::string_view> keys;
  keys.reserve(placeholders_.size());
  for (const auto& [key, owner] : placeholders_) keys.push_back(key);
  placeholder_filter_.Rebuild(keys);
}

std::optional<PlaceholderOwner> SessionTable::FindPlaceholder(
    const std::set<std::string>& keys) const {
  if (keys.empty()) return std::nullopt;
  std::shared_lock lk(mu_);
  for (const auto& key : keys) {
    auto it = placeholders_.find(key);
    if (it != placeholders_.end()) return it->second;
  }
  return std::nullopt;
}

std::vector<Session> SessionTable::Expire() {
  std::unique_lock lk(mu_);
  std::vector<Session> gone;
  auto now = clock_.Now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.expires <= now) {
      gone.push_back(it->second);
      Unindex(it->second);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  if (!gone.empty()) (void)Persist();
  return gone;
}

}  // namespace airlock::control
