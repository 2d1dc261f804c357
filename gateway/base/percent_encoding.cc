// Percent-encoding (see percent_encoding.h).
#include "gateway/base/percent_encoding.h"

#include <array>
#include <cstdint>

namespace airlock {

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string PercentDecode(std::string_view text) {
  static constexpr auto kHex = [] {
    std::array<int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int c = 0; c < 10; ++c) t['0' + c] = static_cast<int8_t>(c);
    for (int c = 0; c < 6; ++c) t['a' + c] = t['A' + c] = static_cast<int8_t>(10 + c);
    return t;
  }();
  auto hex = [](char c) { return kHex[static_cast<unsigned char>(c)]; };
  std::string out;
  out.resize(text.size());
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int hi = text[i] == '%' && i + 2 < text.size() ? hex(text[i + 1]) : -1;
    int lo = hi >= 0 ? hex(text[i + 2]) : -1;
    if (lo >= 0) {
      out[n++] = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out[n++] = text[i];
    }
  }
  out.resize(n);
  return out;
}

}  // namespace airlock
