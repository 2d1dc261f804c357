// Path normalisation (RFC 3986 sections 2.3, 5.2.4) and segment glob matching.
#include "gateway/policy/path.h"

#include "gateway/base/hex.h"

namespace airlock::policy {
namespace {

bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool Fail(std::string* why, const char* message) {
  if (why) *why = message;
  return false;
}

// Decodes unreserved escapes in one segment and upper-cases the others. False if ambiguous.
bool NormalizeSegment(std::string_view in, std::string* out, std::string* why) {
  bool decoded = false;
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x21 || u >= 0x7f) return Fail(why, "control, space or non-ASCII byte in path");
    if (c == '\\') return Fail(why, "backslash in path");
    if (c == '#') return Fail(why, "fragment in request target");
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    if (i + 2 >= in.size()) return Fail(why, "truncated percent-escape in path");
    int hi = HexDigitValue(in[i + 1]);
    int lo = HexDigitValue(in[i + 2]);
    if (hi < 0 || lo < 0) return Fail(why, "invalid percent-escape in path");
    char v = static_cast<char>(hi * 16 + lo);
    if (v == '/' || v == '\\') return Fail(why, "encoded '/' or '\\' in path");
    if (v == '\0') return Fail(why, "encoded NUL in path");
    if (IsUnreserved(v)) {
      out->push_back(v);
      decoded = true;
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out->push_back('%');
      out->push_back(kHex[hi]);
      out->push_back(kHex[lo]);
    }
    i += 2;
  }
  if (decoded && (*out == "." || *out == "..")) {
    return Fail(why, "dot-segment written with percent-escapes");
  }
  return true;
}

}  // namespace

std::optional<std::string> NormalizePath(std::string_view target, std::string* why) {
  target = target.substr(0, target.find('?'));
  if (target.empty() || target.front() != '/') {
    Fail(why, "request target is not an absolute path");
    return std::nullopt;
  }
  std::vector<std::string> out;
  std::string segment;
  std::string_view rest = target.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    bool last = slash == std::string_view::npos;
    std::string_view raw = last ? rest : rest.substr(0, slash);
    if (!NormalizeSegment(raw, &segment, why)) return std::nullopt;
    if (segment.empty() && !last) {
      Fail(why, "empty path segment ('//')");
      return std::nullopt;
    }
    if (segment == ".") {
      if (last) out.emplace_back();
    } else if (segment == "..") {
      if (out.empty()) {
        Fail(why, "'..' climbs above the root");
        return std::nullopt;
      }
      out.pop_back();
      if (last) out.emplace_back();
    } else {
      out.push_back(segment);
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }
  std::string path;
  for (const auto& s : out) path += "/" + s;
  if (path.empty()) path = "/";
  return path;
}

std::optional<PathGlob> PathGlob::Parse(std::string_view text, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty() || text.front() != '/') {
    *error = "path pattern " + quoted + " must start with '/'";
    return std::nullopt;
  }
  if (text.find('?') != std::string_view::npos) {
    *error = "path pattern " + quoted + " contains '?'; patterns match the path, not the query";
    return std::nullopt;
  }
  std::string why;
  auto normalized = NormalizePath(text, &why);
  if (!normalized) {
    *error = "path pattern " + quoted + " is ambiguous: " + why;
    return std::nullopt;
  }
  if (*normalized != text) {
    *error = "path pattern " + quoted + " is not in normal form; write it as '" + *normalized + "'";
    return std::nullopt;
  }
  PathGlob glob;
  glob.text_ = std::string(text);
  std::string_view rest = text.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg == "*") {
      glob.segments_.push_back({Kind::kOne, {}});
    } else if (seg == "**") {
      glob.segments_.push_back({Kind::kAny, {}});
    } else if (seg.find('*') != std::string_view::npos) {
      *error = "path pattern " + quoted +
               ": '*' must be a whole segment ('*' is one segment, '**' any number)";
      return std::nullopt;
    } else {
      glob.segments_.push_back({Kind::kLiteral, std::string(seg)});
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return glob;
}

bool PathGlob::Matches(std::string_view path) const {
  // Split the path into segments (path starts with '/').
  std::vector<std::string_view> segs;
  std::string_view rest = path.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    segs.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  // Wildcard matching over segments; "**" backtracks like '*' in a string glob.
  size_t p = 0, s = 0;
  size_t star_p = std::string::npos, star_s = 0;
  while (s < segs.size()) {
    if (p < segments_.size() && segments_[p].kind == Kind::kAny) {
      star_p = p++;
      star_s = s;
    } else if (p < segments_.size() &&
               ((segments_[p].kind == Kind::kOne && !segs[s].empty()) ||
                (segments_[p].kind == Kind::kLiteral && segments_[p].literal == segs[s]))) {
      ++p;
      ++s;
    } else if (star_p != std::string::npos) {
      p = star_p + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < segments_.size() && segments_[p].kind == Kind::kAny) ++p;
  return p == segments_.size();
}

}  // namespace airlock::policy
