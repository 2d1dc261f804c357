// Leaf minting and its sharded LRU cache (see leaf_cache.h).
#include "gateway/tls/leaf_cache.h"

#include "gateway/net/ip_address.h"
#include "gateway/tls/x509_builder.h"

namespace airlock::tls {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

constexpr size_t kMaxCommonName = 64;  // RFC 5280 ub-common-name

}  // namespace

LeafCache::LeafCache(const CertificateAuthority& ca, const Clock& clock, LeafOptions options)
    : ca_(ca), clock_(clock), options_(options), key_(NewP256Key()) {
  if (!key_) abort();  // no key for the leaves: the process cannot inspect anything
  for (size_t i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>());
}

Result<std::shared_ptr<const Leaf>> LeafCache::Mint(std::string_view name) const {
  std::string n(name);
  if (n.size() >= 2 && n.front() == '[' && n.back() == ']') n = n.substr(1, n.size() - 2);
  const bool is_ip = net::IpAddress::Parse(n).has_value();
  X509NamePtr subject(X509_NAME_new());
  if (!is_ip && n.size() <= kMaxCommonName) {
    X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(n.c_str()), -1, -1, 0);
  }
  auto now = clock_.Now();
  auto not_after = now + options_.validity;
  auto cert =
      NewCertificate(key_.get(), subject.get(), ca_.certificate(), now - hours(1), not_after);
  if (!cert.ok()) return cert.status();
  X509* c = cert.value().get();
  // An empty subject makes the SAN critical (RFC 5280 4.2.1.6).
  const bool empty_subject = X509_NAME_entry_count(subject.get()) == 0;
  std::string san = std::string(empty_subject ? "critical," : "") + (is_ip ? "IP:" : "DNS:") + n;
  for (auto [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                            {NID_basic_constraints, "critical,CA:FALSE"},
                            {NID_key_usage, "critical,digitalSignature"},
                            {NID_ext_key_usage, "serverAuth"},
                            {NID_subject_key_identifier, "hash"},
                            {NID_authority_key_identifier, "keyid:always"}}) {
    if (Status s = AddExtension(c, ca_.certificate(), nid, value); !s.ok()) return s;
  }
  if (Status s = Sign(c, ca_.key()); !s.ok()) return s;
  auto leaf = std::make_shared<Leaf>();
  leaf->certificate = std::move(cert).value();
  leaf->not_after = not_after;
  return std::shared_ptr<const Leaf>(std::move(leaf));
}

bool LeafCache::Fresh(const Leaf& leaf) const {
  return clock_.Now() < leaf.not_after - options_.validity / 4;
}

std::shared_ptr<LeafCache::Slot> LeafCache::SlotFor(std::string_view name) {
  Shard& shard = *shards_[std::hash<std::string_view>{}(name) % kShards];
  std::lock_guard<std::mutex> lk(shard.mu);
  auto it = shard.entries.find(name);
  if (it != shard.entries.end()) {
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second.position);
    return it->second.slot;
  }
  const size_t per_shard = std::max<size_t>(1, options_.capacity / kShards);
  while (shard.entries.size() >= per_shard) {
    shard.entries.erase(shard.lru.back());
    shard.lru.pop_back();
  }
  shard.lru.emplace_front(name);
  auto slot = std::make_shared<Slot>();
  shard.entries.emplace(std::string(name), Shard::Entry{slot, shard.lru.begin()});
  return slot;
}

Result<std::shared_ptr<const Leaf>> LeafCache::Get(std::string_view name) {
  std::shared_ptr<Slot> slot = SlotFor(name);
  std::lock_guard<std::mutex> lk(slot->mu);
  if (slot->leaf && Fresh(*slot->leaf)) return slot->leaf;
  auto leaf = Mint(name);
  if (!leaf.ok()) return leaf.status();
  slot->leaf = leaf.value();
  minted_++;
  return slot->leaf;
}

}  // namespace airlock::tls
