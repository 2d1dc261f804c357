// Request paths as policies see them. NormalizePath() removes dot-segments and decodes
// percent-escapes of unreserved characters; a path that servers could read in different ways
// (encoded '/' or '\', dot-segments written with escapes, "//", a backslash, '..' above the root,
// control or non-ASCII bytes, bad escapes) is reported as ambiguous instead. PathGlob matches a
// normalised path segment by segment: "*" is one non-empty segment, "**" any number (also none).
// Pure values; no thread ownership.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::policy {

// `target` is an origin-form request target ("/a/b?q=1"); the query is dropped. nullopt when the
// path is ambiguous; *why (if given) then says what made it so.
std::optional<std::string> NormalizePath(std::string_view target, std::string* why = nullptr);

class PathGlob {
 public:
  // Validates a pattern as written in a policy ("/repos/acme/**").
  static std::optional<PathGlob> Parse(std::string_view text, std::string* error);

  // `path` must come from NormalizePath().
  bool Matches(std::string_view path) const;
  const std::string& text() const { return text_; }

 private:
  enum class Kind : uint8_t { kLiteral, kOne, kAny };
  struct Segment {
    Kind kind;
    std::string literal;
  };
  std::string text_;
  std::vector<Segment> segments_;
};

}  // namespace airlock::policy
