// DNS messages (RFC 1035) for the gateway's DNS responder: strict parsing of one query and
// building of its answer (A/AAAA records, NODATA, NXDOMAIN, REFUSED, FORMERR, NOTIMP). Queries
// with compression pointers, more than one question, records in the answer or authority
// sections, or trailing bytes are malformed. Pure functions; no thread ownership.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/net/ip_address.h"

namespace airlock::dns {

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr size_t kMaxMessage = 4096;

struct Query {
  uint16_t id = 0;
  bool recursion_desired = false;
  std::string name;  // as asked, without the trailing dot
  uint16_t type = 0;
  uint16_t klass = 0;
  std::string question;  // the raw question section, echoed in the answer
  std::string opt;       // the raw EDNS OPT record, if any
};

enum class ParseStatus {
  kOk,
  kMalformed,       // answer FORMERR (if the id could be read)
  kNotImplemented,  // an opcode other than QUERY: answer NOTIMP
  kIgnore,          // a response, or too short to answer at all
};

ParseStatus ParseQuery(std::string_view packet, Query* out);

// An answer to `q`: `addresses` of the question's type become records with `ttl`.
std::string BuildAnswer(const Query& q, Rcode rcode, const std::vector<net::IpAddress>& addresses,
                        uint32_t ttl);
// FORMERR or NOTIMP for a packet that did not parse (needs at least the 2-byte id).
std::string BuildError(std::string_view packet, Rcode rcode);

std::string_view TypeName(uint16_t type);

}  // namespace airlock::dns
