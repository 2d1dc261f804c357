// Hex digit decoding shared by host and path parsing. Stateless; no thread ownership.
#pragma once

namespace airlock {

// The value of a hex digit (either case), or -1 if `c` is not one.
constexpr int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace airlock
