// The audit log's hash chain and record conventions, shared by the writer and the verifier:
// every record's "prev" is the SHA-256 (or, with a key, HMAC-SHA-256) of the previous line's
// bytes, so any edit, deletion, insertion or reordering breaks the chain. Pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace airlock::audit {

inline constexpr int kSchemaVersion = 1;
// "prev" of the very first record of a log.
inline const std::string kGenesisPrev(64, '0');

std::string LinkHash(std::string_view line, std::string_view hmac_key);

// RFC 3339 in UTC with microseconds: 2026-11-23T02:41:07.123456Z
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

// A request target as it may be logged: the path, with every query value replaced by "_" (the
// names stay). "/a?token=s3cr3t&x" -> "/a?token=_&x".
std::string RedactTarget(std::string_view target);

}  // namespace airlock::audit
