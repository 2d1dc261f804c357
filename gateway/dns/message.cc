// DNS wire format.
#include "gateway/dns/message.h"

namespace airlock::dns {
namespace {

uint16_t U16(std::string_view d, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(d[at]) << 8) |
                               static_cast<uint8_t>(d[at + 1]));
}

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xff));
}

void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xffff));
}

// Reads an uncompressed name at `pos`; false on pointers, bad lengths or overflow.
bool ReadName(std::string_view d, size_t* pos, std::string* name) {
  size_t total = 0;
  name->clear();
  while (true) {
    if (*pos >= d.size()) return false;
    uint8_t len = static_cast<uint8_t>(d[*pos]);
    if (len == 0) {
      ++*pos;
      return true;
    }
    if (len > 63) return false;  // 0xC0 pointers (and the reserved 0x40/0x80 forms)
    if (*pos + 1 + len > d.size()) return false;
    total += len + 1;
    if (total > 254) return false;
    if (!name->empty()) name->push_back('.');
    name->append(d.substr(*pos + 1, len));
    *pos += 1 + len;
  }
}

}  // namespace

ParseStatus ParseQuery(std::string_view d, Query* out) {
  if (d.size() < 12) return ParseStatus::kIgnore;
  if (d.size() > kMaxMessage) return ParseStatus::kMalformed;
  uint16_t flags = U16(d, 2);
  if (flags & 0x8000) return ParseStatus::kIgnore;  // a response
  out->id = U16(d, 0);
  out->recursion_desired = flags & 0x0100;
  if (((flags >> 11) & 0xf) != 0) return ParseStatus::kNotImplemented;
  uint16_t qd = U16(d, 4), an = U16(d, 6), ns = U16(d, 8), ar = U16(d, 10);
  if (qd != 1 || an != 0 || ns != 0 || ar > 1) return ParseStatus::kMalformed;
  size_t pos = 12;
  if (!ReadName(d, &pos, &out->name) || pos + 4 > d.size()) return ParseStatus::kMalformed;
  out->type = U16(d, pos);
  out->klass = U16(d, pos + 2);
  pos += 4;
  out->question = std::string(d.substr(12, pos - 12));
  if (ar == 1) {
    // Only an EDNS OPT record (root name, type 41) may follow.
    size_t opt_start = pos;
    if (pos + 11 > d.size() || d[pos] != 0 || U16(d, pos + 1) != 41) return ParseStatus::kMalformed;
    size_t rdlen = U16(d, pos + 9);
    pos += 11 + rdlen;
    if (pos > d.size()) return ParseStatus::kMalformed;
    out->opt = std::string(d.substr(opt_start, pos - opt_start));
  }
  if (pos != d.size()) return ParseStatus::kMalformed;
  return ParseStatus::kOk;
}

std::string BuildAnswer(const Query& q, Rcode rcode, const std::vector<net::IpAddress>& addresses,
                        uint32_t ttl) {
  std::vector<const net::IpAddress*> records;
  if (rcode == Rcode::kNoError) {
    for (const auto& a : addresses) {
      if ((q.type == kTypeA && a.is_v4()) || (q.type == kTypeAaaa && !a.is_v4())) {
        records.push_back(&a);
      }
    }
  }
  std::string out;
  Put16(&out, q.id);
  // QR, opcode 0, RD echoed, RA set; no AA (the gateway is not authoritative).
  Put16(&out, static_cast<uint16_t>(0x8080 | (q.recursion_desired ? 0x0100 : 0) |
                                    static_cast<uint16_t>(rcode)));
  Put16(&out, 1);
  Put16(&out, static_cast<uint16_t>(records.size()));
  Put16(&out, 0);
  Put16(&out, q.opt.empty() ? 0 : 1);
  out += q.question;
  for (const auto* a : records) {
    Put16(&out, 0xC00C);  // the name in the question
    Put16(&out, q.type);
    Put16(&out, 1);
    Put32(&out, ttl);
    Put16(&out, a->is_v4() ? 4 : 16);
    out.append(reinterpret_cast<const char*>(a->bytes().data()), a->is_v4() ? 4 : 16);
  }
  if (!q.opt.empty()) {
    // Our own OPT: 1232-byte UDP payload, no options.
    out += std::string("\0\0\x29\x04\xd0\0\0\0\0\0\0", 11);
  }
  return out;
}

std::string BuildError(std::string_view packet, Rcode rcode) {
  std::string out;
  if (packet.size() < 2) return out;
  out.append(packet.substr(0, 2));
  uint16_t rd = packet.size() >= 4 ? (U16(packet, 2) & 0x0100) : 0;
  Put16(&out, static_cast<uint16_t>(0x8080 | rd | static_cast<uint16_t>(rcode)));
  for (int i = 0; i < 4; ++i) Put16(&out, 0);
  return out;
}

std::string_view TypeName(uint16_t type) {
  switch (type) {
    case 1:
      return "A";
    case 28:
      return "AAAA";
    case 5:
      return "CNAME";
    case 15:
      return "MX";
    case 16:
      return "TXT";
    case 33:
      return "SRV";
    case 65:
      return "HTTPS";
    case 255:
      return "ANY";
    default:
      return "OTHER";
  }
}

}  // namespace airlock::dns
