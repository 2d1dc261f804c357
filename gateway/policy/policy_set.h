// PolicySet: the immutable, compiled form of every loaded policy, indexed for Decide(). A reload
// builds a new PolicySet and swaps a shared_ptr; readers keep the one they started with.
// Immutable after Build(); safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/string_hash.h"
#include "gateway/policy/host_pattern.h"
#include "gateway/policy/policy.h"

namespace airlock::policy {

class CompiledPolicy {
 public:
  explicit CompiledPolicy(Policy policy);

  const Policy& policy() const { return policy_; }
  const HostIndex& egress_index() const { return egress_index_; }
  const HostIndex& deny_index() const { return deny_index_; }

 private:
  Policy policy_;
  HostIndex egress_index_;  // host pattern -> ascending indexes into policy_.egress
  HostIndex deny_index_;
};

class PolicySet {
 public:
  PolicySet() = default;
  // Policy names must be unique (the loader reports duplicates as errors).
  static PolicySet Build(std::vector<Policy> policies);

  const CompiledPolicy* Find(std::string_view name) const;
  std::vector<std::string> Names() const;  // sorted
  size_t size() const { return by_name_.size(); }

 private:
  StringMap<std::shared_ptr<const CompiledPolicy>> by_name_;
};

}  // namespace airlock::policy
