// PublicSuffixList: is a domain a public suffix (com, co.uk, github.io)? Used to reject
// wildcards such as *.co.uk that would match domains of unrelated owners. The system
// implementation reads Debian's publicsuffix data through libpsl.
// Implementations are immutable after construction and safe to share between threads.
#pragma once

#include <memory>
#include <string_view>

namespace airlock::policy {

class PublicSuffixList {
 public:
  virtual ~PublicSuffixList() = default;
  // `domain` is a normalised name (lower case, no trailing dot). ICANN and private-section
  // suffixes count; the implicit "*" rule for unlisted TLDs does not, so *.internal is allowed.
  virtual bool IsPublicSuffix(std::string_view domain) const = 0;
};

// libpsl with the newest data on the system (the publicsuffix package), else its built-in list.
const PublicSuffixList& SystemPublicSuffixList();

}  // namespace airlock::policy
