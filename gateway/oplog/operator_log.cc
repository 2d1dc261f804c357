// The operator's log on spdlog: one stderr sink with its own lock, UTC timestamps, logfmt lines.
#include "gateway/oplog/operator_log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace airlock::oplog {
namespace {

std::atomic<Level> g_level{Level::kInfo};

spdlog::logger& Logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("airlock",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc);
    l->set_level(spdlog::level::trace);  // filtered by g_level, before formatting
    l->flush_on(spdlog::level::trace);   // a line per event, never held back
    return l;
  }();
  return *logger;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// A value as it is, when it is a plain word; otherwise quoted with ", \ and control bytes
// escaped, so that a value never ends the line or looks like another field.
void AppendValue(std::string* out, std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') plain = false;
  }
  if (plain) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (u < 0x20 || u == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out->append("\\x");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace

std::optional<Level> ParseLevel(std::string_view name) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (name == LevelName(l)) return l;
  }
  return std::nullopt;
}

void SetLevel(Level level) { g_level.store(level); }

Field F(std::string_view key, std::string_view value) { return {key, std::string(value)}; }
Field F(std::string_view key, uint64_t value) { return {key, std::to_string(value)}; }

std::string FormatLine(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line = "level=";
  line += LevelName(level);
  line += " event=";
  AppendValue(&line, event);
  for (const Field& f : fields) {
    line.push_back(' ');
    line.append(f.key);
    line.push_back('=');
    AppendValue(&line, f.value);
  }
  return line;
}

void Log(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (level < g_level.load()) return;
  Logger().info("{}", FormatLine(level, event, fields));
}

}  // namespace airlock::oplog
