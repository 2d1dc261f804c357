// LeafCache: the certificates the gateway presents to sandboxes for inspected TLS, one per
// server name, minted on first use by the CA and kept in an LRU cache. One EC P-256 key per
// gateway process serves every leaf (no key generation on the hot path). A leaf carries the name
// as a SAN (an IP SAN for an address literal), AKI and SKI, a random serial and a short
// validity; it is minted again once less than a quarter of its validity is left, against the
// wall clock. Thread-safe: the cache is split into shards, each with its own lock, and
// concurrent handshakes for one name wait for a single mint on that name's slot, so no lock is
// shared by every handshake.
#pragma once

#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/base/clock.h"
#include "gateway/base/status.h"
#include "gateway/base/string_hash.h"
#include "gateway/tls/certificate_authority.h"

namespace airlock::tls {

struct LeafOptions {
  std::chrono::hours validity{24};
  size_t capacity = 10000;  // names kept, over all shards
};

struct Leaf {
  X509Ptr certificate;
  std::chrono::system_clock::time_point not_after;
};

class LeafCache {
 public:
  LeafCache(const CertificateAuthority& ca, const Clock& clock, LeafOptions options);

  // The leaf for `name` (a DNS name or an address literal, as normalised by the caller).
  Result<std::shared_ptr<const Leaf>> Get(std::string_view name);
  // The key every leaf certifies.
  EVP_PKEY* key() const { return key_.get(); }
  // Leaves minted so far (for metrics and tests).
  uint64_t minted() const { return minted_.load(); }

  // Mints a leaf for `name` now, outside the cache.
  Result<std::shared_ptr<const Leaf>> Mint(std::string_view name) const;

 private:
  struct Slot {
    std::mutex mu;  // held while minting: other handshakes for the name wait here
    std::shared_ptr<const Leaf> leaf;
  };
  struct Shard {
    std::mutex mu;
    std::list<std::string> lru;  // most recent first
    struct Entry {
      std::shared_ptr<Slot> slot;
      std::list<std::string>::iterator position;
    };
    StringMap<Entry> entries;
  };
  static constexpr size_t kShards = 16;

  std::shared_ptr<Slot> SlotFor(std::string_view name);
  bool Fresh(const Leaf& leaf) const;

  const CertificateAuthority& ca_;
  const Clock& clock_;
  const LeafOptions options_;
  EvpPkeyPtr key_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> minted_{0};
};

}  // namespace airlock::tls
