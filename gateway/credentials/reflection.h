// ReflectionFilter: keeps an injected credential from coming back. An upstream that echoes
// request headers (debug endpoints, error pages, httpbin-style APIs) would hand the real token
// to the sandbox; the responses to a request that carried one pass through this filter, which
// replaces each injected value (and the encoded form it was sent in) with the placeholder the
// sandbox knows. Bodies stream: a match split across reads is found, because the last bytes
// that could begin one are held back until the next read or the end. Pure; one per response;
// used on its connection's thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::credentials {

class ReflectionFilter {
 public:
  // Pairs of (what went upstream, what the sandbox may see instead).
  explicit ReflectionFilter(std::vector<std::pair<std::string, std::string>> replacements);

  // Replaces every match in a whole text (a header value); true if there was one.
  bool Replace(std::string* text);
  // The body bytes that may be sent now; the rest waits for more, or for Finish().
  std::string Feed(std::string_view data);
  std::string Finish();
  // Whether anything was replaced.
  bool hit() const { return hit_; }

 private:
  std::vector<std::pair<std::string, std::string>> replacements_;
  size_t longest_ = 0;
  std::string held_;
  bool hit_ = false;
};

}  // namespace airlock::credentials
