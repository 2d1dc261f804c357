// JsonText, FieldText: JSON values as the text of a table cell, for airlockctl's tables
// (audit records, sessions). Plain functions; no state.
#pragma once

#include <string>

namespace airlock::ctl {

// `v` as text: a string as it is, any other value as JSON. `Json` is nlohmann::json or
// nlohmann::ordered_json.
template <typename Json>
std::string JsonText(const Json& v) {
  return v.is_string() ? v.template get<std::string>() : v.dump();
}

// `j[key]` as text, "" when absent; `j` is an object.
template <typename Json>
std::string FieldText(const Json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? "" : JsonText(*it);
}

}  // namespace airlock::ctl
