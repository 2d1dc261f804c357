// Host pattern validation and the rule index.
#include "gateway/policy/host_pattern.h"

#include "gateway/net/host.h"

namespace airlock::policy {

bool HostPattern::Matches(std::string_view name) const {
  if (!wildcard) return name == domain;
  return name.size() > domain.size() + 1 && name.ends_with(domain) &&
         name[name.size() - domain.size() - 1] == '.';
}

std::optional<HostPattern> ParseHostPattern(std::string_view text, const PublicSuffixList& psl,
                                            SuffixWildcards suffix_wildcards, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  HostPattern pattern;
  std::string_view rest = text;
  if (rest == "*") {
    *error = "host pattern '*' would allow every host; list the hosts instead";
    return std::nullopt;
  }
  if (rest.starts_with("*.")) {
    pattern.wildcard = true;
    rest.remove_prefix(2);
    if (rest.empty() || rest == ".") {
      *error = "host pattern " + quoted + " has no domain after the wildcard";
      return std::nullopt;
    }
  }
  if (rest.find('*') != std::string_view::npos) {
    *error = "host pattern " + quoted +
             ": a wildcard may only be the whole leading label, as in *.example.com";
    return std::nullopt;
  }
  net::NormalizedHost host = net::NormalizeHost(rest);
  if (host.error != net::HostError::kNone) {
    *error = "host pattern " + quoted + ": " + std::string(net::HostErrorName(host.error));
    return std::nullopt;
  }
  if (host.address) {
    *error = "host pattern " + quoted +
             " is an IP address; hosts are DNS names (list internal addresses under private:)";
    return std::nullopt;
  }
  for (size_t start = 0; start < host.name.size();) {
    size_t end = host.name.find('.', start);
    if (end == std::string::npos) end = host.name.size();
    if (host.name[start] == '-' || host.name[end - 1] == '-') {
      *error = "host pattern " + quoted + ": a label may not start or end with '-'";
      return std::nullopt;
    }
    start = end + 1;
  }
  if (pattern.wildcard && suffix_wildcards == SuffixWildcards::kReject &&
      psl.IsPublicSuffix(host.name)) {
    *error = "host pattern " + quoted + " covers the public suffix '" + host.name +
             "': it would match domains of unrelated owners";
    return std::nullopt;
  }
  pattern.domain = std::move(host.name);
  return pattern;
}

void HostIndex::Add(const HostPattern& pattern, uint32_t rule) {
  auto& list = (pattern.wildcard ? wildcard_ : exact_)[pattern.domain];
  if (list.empty() || list.back() != rule) list.push_back(rule);
}

bool HostIndex::Contains(std::string_view name) const {
  bool found = false;
  ForEachMatch(name, [&](const std::vector<uint32_t>&) { found = true; });
  return found;
}

}  // namespace airlock::policy
