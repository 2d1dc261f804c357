// SessionTable: the sandboxes the gateway serves. A session has an id, a policy, a source address
// (a VM's address on its tap) and/or a proxy token, a TTL and labels, plus live usage counters.
// Tokens are returned once at creation and only their SHA-256 is kept (in memory and on disk).
// Each session also holds a placeholder per credential its policy binds; every placeholder of
// every session is indexed by its key, so a request can be checked for any of them.
// The table is persisted atomically to the state directory and restored on start.
// Thread-safe: lookups take a shared lock, changes an exclusive one.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/base/clock.h"
#include "gateway/base/status.h"
#include "gateway/credentials/placeholder.h"
#include "gateway/net/ip_address.h"

namespace airlock::control {

// Live counters of one session, updated by the connections that belong to it.
struct SessionUsage {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> bytes_in{0};
  // Requests in the current and previous minute (a sliding window approximation).
  std::mutex window_mu;
  int64_t window_minute = 0;
  uint64_t this_minute = 0;
  uint64_t last_minute = 0;

  uint64_t RequestsLastMinute(std::chrono::system_clock::time_point now);
  void CountRequest(std::chrono::system_clock::time_point now);
};

// What a sandbox holds instead of a credential (docs/CREDENTIALS.md).
struct Placeholder {
  std::string credential;  // the gateway's credential name
  std::string env;         // the sandbox's variable
  std::string value;
};

// Whose placeholder a request carried.
struct PlaceholderOwner {
  std::string session;
  std::string credential;
};

struct Session {
  std::string id;
  std::string policy;
  std::optional<net::IpAddress> source;
  std::string token_sha256;  // empty: no proxy token
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point expires;
  std::map<std::string, std::string> labels;
  std::vector<Placeholder> placeholders;
  std::shared_ptr<SessionUsage> usage = std::make_shared<SessionUsage>();

  // This session's placeholder for `credential`, or nullptr.
  const Placeholder* PlaceholderFor(std::string_view credential) const;
};

struct SessionSpec {
  std::string id;  // empty: generated
  std::string policy;
  std::optional<net::IpAddress> source;
  bool with_token = true;
  std::chrono::seconds ttl{3600};
  std::map<std::string, std::string> labels;
  std::vector<Placeholder> placeholders;
};

class SessionTable {
 public:
  // `state_file` empty: not persisted.
  SessionTable(std::string state_file, const Clock& clock);

  // Reads the persisted table, dropping sessions that expired meanwhile and sessions that are
  // damaged (returns how many of those). An error if the file is not a session table at all.
  Result<size_t> Load();
  // The same from the table's text.
  Result<size_t> Restore(std::string_view text);

  // On success returns the session and, if one was asked for, its token (shown only now).
  Result<std::pair<Session, std::string>> Create(const SessionSpec& spec);
  bool Delete(const std::string& id);
  std::optional<Session> Get(const std::string& id) const;
  std::vector<Session> List() const;
  size_t size() const;

  std::optional<Session> FindBySource(const net::IpAddress& source) const;
  // Constant-time comparison of the token's hash.
  std::optional<Session> FindByToken(const std::string& id, const std::string& token) const;

  // The owner of the first of `keys` that is a placeholder's key (credentials/placeholder.h).
  std::optional<PlaceholderOwner> FindPlaceholder(const std::set<std::string>& keys) const;
  // The first five digits of every live placeholder's key: lets a scan of a large body skip
  // the windows that cannot be one. Read without the table's lock.
  const credentials::KeyFilter& placeholder_filter() const { return placeholder_filter_; }

  // Removes expired sessions and returns them.
  std::vector<Session> Expire();

 private:
  Status Persist() const;          // called with mu_ held exclusively; a failure is logged
  Status WriteStateFile() const;   // likewise
  void Index(const Session& s);    // likewise
  void Unindex(const Session& s);  // likewise

  std::string state_file_;
  const Clock& clock_;
  mutable std::shared_mutex mu_;
  std::map<std::string, Session> sessions_;
  std::unordered_map<std::string, PlaceholderOwner> placeholders_;  // by key
  credentials::KeyFilter placeholder_filter_;                       // over placeholders_
};

}  // namespace airlock::control
