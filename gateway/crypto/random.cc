// Random hex from RAND_bytes.
#include "gateway/crypto/random.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <vector>

#include "gateway/base/hex.h"

namespace airlock::crypto {

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(bytes)) != 1) std::abort();
  return HexEncode(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

}  // namespace airlock::crypto
