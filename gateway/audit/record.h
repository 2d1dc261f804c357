// Record: one audit record's fields, serialised as they are added (the members of a JSON object,
// without its braces), so that a record costs one string to build, queue and write instead of a
// tree of JSON values. Keys are the schema's names (docs/AUDIT_LOG.md), plain ASCII written as
// they are, each set at most once; values are strings (escaped; bytes that are not UTF-8 become
// U+FFFD), integers, booleans or lists of strings. Built on any thread, then moved to the audit
// writer.
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::audit {

class Record {
 public:
  explicit Record(std::string_view event);
  // No event: fields that several records share, serialised once (a connection's, repeated by
  // each of its HTTP/2 streams' records).
  Record() = default;
  // `event`, then `shared`'s fields.
  Record(std::string_view event, const Record& shared);

  Record& Set(std::string_view key, std::string_view value);
  Record& Set(std::string_view key, const char* value) { return Set(key, std::string_view(value)); }
  Record& Set(std::string_view key, const std::string& value) {
    return Set(key, std::string_view(value));
  }
  Record& Set(std::string_view key, bool value);
  template <std::integral T>
  requires(!std::same_as<T, bool>) Record& Set(std::string_view key, T value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
    return SetNumber(key, std::string_view(digits, static_cast<size_t>(end - digits)));
  }
  Record& Set(std::string_view key, const std::vector<std::string>& values);

  // `"event":"...",...`: the members, ready to go between the writer's own.
  const std::string& members() const { return members_; }

 private:
  Record& SetNumber(std::string_view key, std::string_view digits);
  void Key(std::string_view key);

  std::string members_;
};

// Appends `s` to `out` as a JSON string (quotes included).
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace airlock::audit
