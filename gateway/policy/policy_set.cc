// Compilation of policies into indexes.
#include "gateway/policy/policy_set.h"

#include <algorithm>

namespace airlock::policy {

CompiledPolicy::CompiledPolicy(Policy policy) : policy_(std::move(policy)) {
  for (uint32_t i = 0; i < policy_.egress.size(); ++i) {
    for (const auto& host : policy_.egress[i].hosts) egress_index_.Add(host, i);
  }
  for (const auto& host : policy_.deny_hosts) deny_index_.Add(host, 0);
}

PolicySet PolicySet::Build(std::vector<Policy> policies) {
  PolicySet set;
  for (auto& p : policies) {
    std::string name = p.name;
    set.by_name_.emplace(std::move(name), std::make_shared<const CompiledPolicy>(std::move(p)));
  }
  return set;
}

const CompiledPolicy* PolicySet::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

std::vector<std::string> PolicySet::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : by_name_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace airlock::policy
