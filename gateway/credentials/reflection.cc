// Replacing reflected credentials in responses (see reflection.h).
#include "gateway/credentials/reflection.h"

#include <algorithm>

namespace airlock::credentials {

ReflectionFilter::ReflectionFilter(std::vector<std::pair<std::string, std::string>> replacements)
    : replacements_(std::move(replacements)) {
  std::erase_if(replacements_, [](const auto& r) { return r.first.empty(); });
  for (const auto& [from, _] : replacements_) longest_ = std::max(longest_, from.size());
}

bool ReflectionFilter::Replace(std::string* text) {
  bool any = false;
  for (const auto& [from, to] : replacements_) {
    for (size_t at = text->find(from); at != std::string::npos;
         at = text->find(from, at + to.size())) {
      text->replace(at, from.size(), to);
      any = true;
    }
  }
  hit_ |= any;
  return any;
}

std::string ReflectionFilter::Feed(std::string_view data) {
  held_.append(data);
  Replace(&held_);
  // Hold back what could be the start of a match that the next bytes complete.
  size_t keep = longest_ > 0 ? std::min(held_.size(), longest_ - 1) : 0;
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string ReflectionFilter::Finish() {
  Replace(&held_);
  return std::exchange(held_, std::string());
}

}  // namespace airlock::credentials
