// Record's serialisation and the JSON string escaping it uses.
#include "gateway/audit/record.h"

#include <array>

namespace airlock::audit {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if it is not one.
size_t Utf8Length(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  const unsigned char b = byte(0);
  if (b >= 0xC2 && b <= 0xDF) return cont(1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    const unsigned char lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    const unsigned char lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

// Bytes that stand for themselves in a JSON string: printable ASCII but the quote and backslash.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // The run of characters that need nothing, appended at once.
    size_t plain = i;
    while (plain < s.size() && kPlain[static_cast<unsigned char>(s[plain])]) ++plain;
    out->append(s.substr(i, plain - i));
    i = plain;
    if (i == s.size()) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = Utf8Length(s.substr(i));
      if (n == 0) {
        out->append("\xEF\xBF\xBD");  // U+FFFD for a byte that starts no valid sequence
        ++i;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xF]);
    }
    ++i;
  }
  out->push_back('"');
}

Record::Record(std::string_view event) {
  members_.reserve(384);
  Set("event", event);
}

Record::Record(std::string_view event, const Record& shared) : Record(event) {
  if (!shared.members_.empty()) members_.append(",").append(shared.members_);
}

void Record::Key(std::string_view key) {
  if (!members_.empty()) members_.push_back(',');
  members_.push_back('"');
  members_.append(key);  // a schema name: nothing to escape
  members_.append("\":");
}

Record& Record::Set(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(&members_, value);
  return *this;
}

Record& Record::Set(std::string_view key, bool value) {
  Key(key);
  members_.append(value ? "true" : "false");
  return *this;
}

Record& Record::Set(std::string_view key, const std::vector<std::string>& values) {
  Key(key);
  members_.push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) members_.push_back(',');
    AppendJsonString(&members_, values[i]);
  }
  members_.push_back(']');
  return *this;
}

Record& Record::SetNumber(std::string_view key, std::string_view digits) {
  Key(key);
  members_.append(digits);
  return *this;
}

}  // namespace airlock::audit
