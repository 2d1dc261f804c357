// The operator's log: what the gateway itself does and what goes wrong with it (start and stop,
// configuration and reloads, audit-write and persistence errors, credential refresh failures,
// error summaries), one line per event on stderr, where journald picks it up:
//   2026-12-02T13:30:00.123Z level=warn event=policy.reject trigger=sighup errors="a.yaml:3:1: ..."
// Values are quoted and escaped so that nothing a value holds can start a line or fake a field.
// Callers pass names, counts and error texts, never a token, key or placeholder. The audit log
// stays the record of traffic. Thread-safe.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace airlock::oplog {

enum class Level { kDebug, kInfo, kWarn, kError };

// "debug", "info", "warn" or "error".
std::optional<Level> ParseLevel(std::string_view name);
// Events below `level` are dropped (default: info).
void SetLevel(Level level);

struct Field {
  std::string_view key;
  std::string value;
};
Field F(std::string_view key, std::string_view value);
Field F(std::string_view key, uint64_t value);

// One event.
void Log(Level level, std::string_view event, std::initializer_list<Field> fields = {});

// The line Log() writes, after its timestamp (exposed for tests).
std::string FormatLine(Level level, std::string_view event, std::initializer_list<Field> fields);

}  // namespace airlock::oplog
