// TLS contexts for inspection, and the classification of upstream handshake failures (see
// inspector.h).
#include "gateway/tls/inspector.h"

#include <openssl/err.h>

#include <algorithm>

#include "gateway/net/ip_address.h"
#include "gateway/tls/certificate_authority.h"
#include "gateway/tls/leaf_cache.h"

namespace airlock::tls {
namespace {

// ALPN lists in wire form (length-prefixed names).
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
constexpr unsigned char kAlpnBoth[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// The sandbox is offered exactly the protocol the upstream chose, so that what it speaks can be
// relayed as it is (arg: the one-entry wire list).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto* ours = static_cast<const unsigned char*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, 1u + ours[0], in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // not offered: no ALPN (HTTP/1.1 by default)
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

Result<SslCtxPtr> SandboxContext(const unsigned char* alpn) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Status::Error("cannot create a TLS context: " + TakeOpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_select_cb(ctx.get(), SelectAlpn,
                             const_cast<void*>(static_cast<const void*>(alpn)));
  return ctx;
}

std::string Unbracket(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::string(host);
}

}  // namespace

bool OffersHttp2(const std::vector<std::string>& alpn) {
  return std::find(alpn.begin(), alpn.end(), "h2") != alpn.end();
}

struct TlsInspector::Contexts {
  SslCtxPtr sandbox_http11;
  SslCtxPtr sandbox_h2;
  SslCtxPtr upstream;
};

TlsInspector::TlsInspector() = default;
TlsInspector::~TlsInspector() = default;

Result<std::unique_ptr<TlsInspector>> TlsInspector::Create(const InspectorOptions& o,
                                                           const Clock& clock) {
  std::unique_ptr<TlsInspector> t(new TlsInspector());
  auto ca = CertificateAuthority::LoadOrCreate({o.ca_cert_file, o.ca_key_file, o.state_dir});
  if (!ca.ok()) return ca.status();
  t->ca_ = std::move(ca).value();
  t->leaves_ =
      std::make_unique<LeafCache>(*t->ca_, clock, LeafOptions{o.leaf_validity, o.leaf_cache_size});
  t->contexts_ = std::make_unique<Contexts>();

  auto http11 = SandboxContext(kAlpnHttp11);
  if (!http11.ok()) return http11.status();
  auto h2 = SandboxContext(kAlpnH2);
  if (!h2.ok()) return h2.status();
  t->contexts_->sandbox_http11 = std::move(http11).value();
  t->contexts_->sandbox_h2 = std::move(h2).value();

  SslCtxPtr upstream(SSL_CTX_new(TLS_client_method()));
  if (!upstream) return Status::Error("cannot create a TLS context: " + TakeOpenSslErrors());
  SSL_CTX_set_min_proto_version(upstream.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(upstream.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(upstream.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(upstream.get(), SSL_VERIFY_PEER, nullptr);
  int loaded =
      o.upstream_ca_file.empty()
          ? SSL_CTX_set_default_verify_paths(upstream.get())
          : SSL_CTX_load_verify_locations(upstream.get(), o.upstream_ca_file.c_str(), nullptr);
  if (loaded != 1) {
    return Status::Error("cannot load upstream roots" +
                         (o.upstream_ca_file.empty() ? std::string(" (system store)")
                                                     : " from " + o.upstream_ca_file) +
                         ": " + TakeOpenSslErrors());
  }
  t->contexts_->upstream = std::move(upstream);
  return t;
}

const std::string& TlsInspector::ca_certificate_pem() const { return ca_->certificate_pem(); }

Result<ssl_st*> TlsInspector::NewSandboxSide(std::string_view sni, AppProtocol serve) {
  auto leaf = leaves_->Get(sni);
  if (!leaf.ok()) return leaf.status();
  SslPtr ssl(SSL_new(serve == AppProtocol::kHttp2 ? contexts_->sandbox_h2.get()
                                                  : contexts_->sandbox_http11.get()));
  if (!ssl || SSL_use_certificate(ssl.get(), leaf.value()->certificate.get()) != 1 ||
      SSL_use_PrivateKey(ssl.get(), leaves_->key()) != 1 ||
      SSL_add1_chain_cert(ssl.get(), ca_->certificate()) != 1) {
    return Status::Error("cannot set up a TLS handshake: " + TakeOpenSslErrors());
  }
  return ssl.release();
}

Result<ssl_st*> TlsInspector::NewUpstreamSide(std::string_view host, bool offer_h2) {
  SslPtr ssl(SSL_new(contexts_->upstream.get()));
  if (!ssl) return Status::Error("cannot set up a TLS handshake: " + TakeOpenSslErrors());
  // SSL_set_alpn_protos returns 0 on success.
  if (offer_h2 ? SSL_set_alpn_protos(ssl.get(), kAlpnBoth, sizeof(kAlpnBoth)) != 0
               : SSL_set_alpn_protos(ssl.get(), kAlpnHttp11, sizeof(kAlpnHttp11)) != 0) {
    return Status::Error("cannot set ALPN: " + TakeOpenSslErrors());
  }
  std::string h = Unbracket(host);
  bool ok;
  if (net::IpAddress::Parse(h)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), h.c_str()) == 1;
  } else {
    // SSL_set_tlsext_host_name is a macro with a C cast; its function form here.
    ok = SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, h.data()) ==
             1 &&
         SSL_set1_host(ssl.get(), h.c_str()) == 1;
  }
  if (!ok) return Status::Error("cannot name the upstream for TLS: " + TakeOpenSslErrors());
  return ssl.release();
}

AppProtocol TlsInspector::Negotiated(const ssl_st* ssl) {
  const unsigned char* name = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &name, &len);
  return std::string_view(reinterpret_cast<const char*>(name), len) == "h2" ? AppProtocol::kHttp2
                                                                            : AppProtocol::kHttp11;
}

UpstreamTlsFailure TlsInspector::DescribeFailure(ssl_st* ssl, unsigned long first_error) {
  ERR_clear_error();
  long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  std::string detail = X509_verify_cert_error_string(v);
  switch (v) {
    case X509_V_OK:
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return {"certificate_expired", "the upstream's certificate has expired"};
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return {"certificate_not_yet_valid", "the upstream's certificate is not valid yet"};
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return {"hostname_mismatch", "the upstream's certificate is for another name"};
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return {"unknown_ca",
              "the upstream's certificate is not signed by a trusted CA (" + detail + ")"};
    default:
      return {"certificate_invalid", "the upstream's certificate was refused (" + detail + ")"};
  }
  int reason = ERR_GET_REASON(first_error);
  if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
      reason == SSL_R_NO_PROTOCOLS_AVAILABLE || reason == SSL_R_WRONG_SSL_VERSION) {
    return {"protocol_version", "the upstream offers no TLS version of 1.2 or later"};
  }
  std::string text = "the TLS handshake with the upstream failed";
  if (first_error != 0) {
    char buf[256];
    ERR_error_string_n(first_error, buf, sizeof(buf));
    text += std::string(" (") + buf + ")";
  }
  return {"handshake_failed", text};
}

std::string TlsInspector::ErrorReason(unsigned long error) {
  const char* reason = error ? ERR_reason_error_string(error) : nullptr;
  return reason ? reason : "handshake failed";
}

void TlsInspector::CloseNotify(ssl_st* ssl) {
  if (ssl && SSL_is_init_finished(ssl)) SSL_shutdown(ssl);
  ERR_clear_error();
}

void TlsInspector::Discard(ssl_st* ssl) { SSL_free(ssl); }

}  // namespace airlock::tls
