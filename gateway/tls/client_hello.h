// ParseClientHello(): reads the SNI and ALPN of a TLS ClientHello from the first bytes a client
// sends, without terminating TLS, so passthrough connections can be decided on the name the
// client asks for. Handles a ClientHello split over several records. Pure; no thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::tls {

struct ClientHello {
  std::optional<std::string> sni;  // the host_name entry of server_name, if any
  std::vector<std::string> alpn;
};

enum class HelloStatus {
  kNeedMore,   // not enough bytes yet
  kNotTls,     // the bytes are not a TLS handshake record
  kMalformed,  // a TLS record, but not a well-formed ClientHello
  kOk,
};

// `data` is everything received so far. Up to 64 KiB of handshake is considered.
HelloStatus ParseClientHello(std::string_view data, ClientHello* out);

}  // namespace airlock::tls
