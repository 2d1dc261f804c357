// ClientHello parsing (RFC 8446 section 4.1.2, RFC 6066 section 3, RFC 7301).
#include "gateway/tls/client_hello.h"

#include <cstdint>
#include <set>

namespace airlock::tls {
namespace {

constexpr size_t kMaxHandshake = 65536;
constexpr size_t kMaxRecord = 16384 + 2048;
constexpr uint8_t kHandshakeRecord = 0x16;
constexpr uint8_t kClientHelloType = 1;
constexpr uint32_t kServerNameExt = 0;
constexpr uint32_t kAlpnExt = 16;

// A bounds-checked reader over bytes; any overrun marks it failed.
class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  bool ok() const { return ok_; }
  size_t left() const { return d_.size() - pos_; }
  uint32_t Int(int bytes) {
    if (left() < static_cast<size_t>(bytes)) {
      Fail();
      return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(d_[pos_++]);
    return v;
  }
  std::string_view Bytes(size_t n) {
    if (!ok_ || left() < n) {
      Fail();
      return {};
    }
    std::string_view v = d_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  // A block prefixed with its length in `len_bytes` bytes, as a reader of its own.
  Reader Block(int len_bytes) {
    Reader r(Bytes(Int(len_bytes)));
    r.ok_ = ok_;
    return r;
  }

 private:
  void Fail() {
    ok_ = false;
    pos_ = d_.size();
  }
  std::string_view d_;
  size_t pos_ = 0;
  bool ok_ = true;
};

bool ParseServerName(Reader ext, ClientHello* out) {
  Reader list = ext.Block(2);
  if (!ext.ok() || ext.left() != 0 || list.left() == 0) return false;
  while (list.ok() && list.left() > 0) {
    uint32_t name_type = list.Int(1);
    std::string_view name = list.Bytes(list.Int(2));
    if (!list.ok()) return false;
    if (name_type == 0) {
      // One host_name at most, never empty, never holding a NUL (RFC 6066 section 3: a name
      // as DNS writes it; a NUL could cut it short wherever it is read as a C string).
      if (out->sni || name.empty() || name.find('\0') != std::string_view::npos) return false;
      out->sni = std::string(name);
    }
  }
  return list.ok();
}

bool ParseAlpn(Reader ext, ClientHello* out) {
  Reader list = ext.Block(2);
  if (!ext.ok() || ext.left() != 0) return false;
  while (list.ok() && list.left() > 0) {
    std::string_view protocol = list.Bytes(list.Int(1));
    if (!list.ok() || protocol.empty()) return false;
    out->alpn.emplace_back(protocol);
  }
  return list.ok();
}

bool ParseBody(std::string_view body, ClientHello* out) {
  Reader r(body);
  r.Int(2);     // legacy_version
  r.Bytes(32);  // random
  r.Block(1);   // legacy_session_id
  Reader suites = r.Block(2);
  r.Block(1);  // legacy_compression_methods
  if (!r.ok() || suites.left() == 0 || suites.left() % 2 != 0) return false;
  if (r.left() == 0) return true;  // no extensions
  Reader exts = r.Block(2);
  if (!r.ok() || r.left() != 0) return false;
  std::set<uint32_t> seen;
  while (exts.ok() && exts.left() > 0) {
    uint32_t type = exts.Int(2);
    Reader ext(exts.Bytes(exts.Int(2)));
    if (!exts.ok() || !seen.insert(type).second) return false;  // duplicates are illegal
    if (type == kServerNameExt && !ParseServerName(ext, out)) return false;
    if (type == kAlpnExt && !ParseAlpn(ext, out)) return false;
  }
  return exts.ok();
}

}  // namespace

HelloStatus ParseClientHello(std::string_view data, ClientHello* out) {
  *out = ClientHello{};
  if (!data.empty() && static_cast<uint8_t>(data[0]) != kHandshakeRecord) {
    return HelloStatus::kNotTls;
  }
  if (data.size() >= 2 && data[1] != 0x03) return HelloStatus::kNotTls;
  std::string handshake;
  size_t pos = 0;
  while (true) {
    if (data.size() - pos < 5) return HelloStatus::kNeedMore;
    if (static_cast<uint8_t>(data[pos]) != kHandshakeRecord || data[pos + 1] != 0x03) {
      return HelloStatus::kMalformed;
    }
    size_t len = (static_cast<size_t>(static_cast<uint8_t>(data[pos + 3])) << 8) |
                 static_cast<uint8_t>(data[pos + 4]);
    if (len == 0 || len > kMaxRecord) return HelloStatus::kMalformed;
    if (data.size() - pos - 5 < len) return HelloStatus::kNeedMore;
    handshake.append(data.substr(pos + 5, len));
    pos += 5 + len;
    if (handshake.size() < 4) continue;
    if (static_cast<uint8_t>(handshake[0]) != kClientHelloType) return HelloStatus::kMalformed;
    size_t body_len = (static_cast<size_t>(static_cast<uint8_t>(handshake[1])) << 16) |
                      (static_cast<size_t>(static_cast<uint8_t>(handshake[2])) << 8) |
                      static_cast<uint8_t>(handshake[3]);
    if (body_len > kMaxHandshake) return HelloStatus::kMalformed;
    if (handshake.size() < 4 + body_len) continue;
    return ParseBody(std::string_view(handshake).substr(4, body_len), out)
               ? HelloStatus::kOk
               : HelloStatus::kMalformed;
  }
}

}  // namespace airlock::tls
