// TlsInspector: what terminating and re-originating TLS needs, behind a header free of OpenSSL
// so that server/ can hold it: the CA, the leaf cache, the context for sandbox-facing
// handshakes (the gateway as server: TLS 1.2+, a leaf for the SNI, ALPN: the one protocol the
// upstream chose) and the context for upstream handshakes (the gateway as client: TLS 1.2+, chain
// and host name verified against the configured roots or the system store, SNI = the allowed
// host, ALPN: h2 only when the sandbox offered it, and http/1.1). SSL
// objects are handed out raw for libevent's OpenSSL bufferevents, which take ownership.
// Thread-safe after Create(): contexts are only read, the leaf cache locks per shard.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/clock.h"
#include "gateway/base/status.h"

struct ssl_st;

namespace airlock::tls {

class CertificateAuthority;
class LeafCache;

struct InspectorOptions {
  std::string ca_cert_file;  // empty with ca_key_file: generated in state_dir
  std::string ca_key_file;
  std::string state_dir;
  std::string upstream_ca_file;  // empty: the system store
  std::chrono::hours leaf_validity{24};
  size_t leaf_cache_size = 10000;
};

// The application protocols the gateway relays inside inspected TLS (ALPN).
enum class AppProtocol { kHttp11, kHttp2 };

// Which of ours a ClientHello's ALPN list allows: h2 when it is offered, else HTTP/1.1 (also
// for a client that offers none, as HTTP/1.1 is what no ALPN means).
bool OffersHttp2(const std::vector<std::string>& alpn);

// Why an upstream handshake failed, for the audit record (tls_error) and the 502's message.
struct UpstreamTlsFailure {
  std::string code;  // certificate_expired, unknown_ca, hostname_mismatch, ...
  std::string message;
};

class TlsInspector {
 public:
  static Result<std::unique_ptr<TlsInspector>> Create(const InspectorOptions& options,
                                                      const Clock& clock);
  ~TlsInspector();

  const std::string& ca_certificate_pem() const;

  // A server-side SSL presenting the leaf for `sni` that agrees only to `serve` in ALPN (a
  // client that does not offer it gets no ALPN). The caller owns it.
  Result<ssl_st*> NewSandboxSide(std::string_view sni, AppProtocol serve);
  // A client-side SSL for `host` (a name: SNI and host-name check; an address literal: no SNI,
  // IP check) offering http/1.1, and h2 first when `offer_h2`. The caller owns it.
  Result<ssl_st*> NewUpstreamSide(std::string_view host, bool offer_h2);
  // After a handshake: the protocol ALPN chose (HTTP/1.1 when none).
  static AppProtocol Negotiated(const ssl_st* ssl);
  // After a failed upstream handshake on `ssl`: what went wrong. Clears OpenSSL's error queue.
  static UpstreamTlsFailure DescribeFailure(ssl_st* ssl, unsigned long first_error);
  // OpenSSL's reason for a queued error ("tlsv1 alert unknown ca"), for the audit record of a
  // sandbox that refused its handshake.
  static std::string ErrorReason(unsigned long error);
  // Queues TLS's close_notify on an established connection (the peer then sees a clean end).
  static void CloseNotify(ssl_st* ssl);
  // Frees an SSL object that was not handed on.
  static void Discard(ssl_st* ssl);

 private:
  TlsInspector();
  struct Contexts;

  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<LeafCache> leaves_;
  std::unique_ptr<Contexts> contexts_;
};

}  // namespace airlock::tls
