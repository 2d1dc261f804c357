// Cryptographically secure random identifiers and tokens. Thread-safe.
#pragma once

#include <cstddef>
#include <string>

namespace airlock::crypto {

// `bytes` random bytes from the OpenSSL CSPRNG, as lower-case hex. Aborts if none are available.
std::string RandomHex(size_t bytes);

}  // namespace airlock::crypto
