// Policy loading: YAML v1 files -> validated Policy structs -> a compiled PolicySet. Validation
// collects every error with file:line:column; a file with any error yields no policy, and a set
// with any error yields no set (all-or-nothing, so a reload never half-applies).
// Not thread-safe; one load runs on one thread.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gateway/config/diagnostic.h"
#include "gateway/policy/policy.h"
#include "gateway/policy/policy_set.h"
#include "gateway/policy/public_suffix.h"

namespace airlock::policy {

struct LoadOptions {
  const PublicSuffixList* public_suffixes = &SystemPublicSuffixList();
  // The gateway's credential source names. When set, a rule naming any other credential is an
  // error; when unset (checking a policy without a gateway config), names are not checked.
  std::optional<std::set<std::string>> known_credentials;
};

std::optional<Policy> LoadPolicyFile(const std::string& path, const LoadOptions& options,
                                     config::Diagnostics* diags);
// `source` names the text in diagnostics.
std::optional<Policy> LoadPolicyText(const std::string& text, const std::string& source,
                                     const LoadOptions& options, config::Diagnostics* diags);

// Policy files among `paths`: files as given; for a directory, every *.yaml or *.yml in it that
// is not a test file (*.test.yaml), sorted by name.
std::vector<std::string> ListPolicyFiles(const std::vector<std::string>& paths,
                                         config::Diagnostics* diags);

// True for policy test files (*.test.yaml, *.test.yml).
bool IsTestFile(const std::string& name);

// Loads every policy file among `paths` into one set; names must be unique across files.
std::optional<PolicySet> LoadPolicySet(const std::vector<std::string>& paths,
                                       const LoadOptions& options, config::Diagnostics* diags);

}  // namespace airlock::policy
