// GuestMessage: one message from the guest agent (or the monitor relaying it), checked before
// anything reads it. The guest is hostile: a message must be a flat JSON object, every field the
// host reads has its type and range checked once against the protocol's table, and the
// accessors never throw (a wrong type is an error value, never a nlohmann::json exception).
// Plain value; no thread ownership.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

class GuestMessage {
 public:
  // A parsed line (LineChannel marks a line that is not one JSON object in UTF-8 with an
  // "invalid" member): an error naming the first field that breaks the protocol, if any.
  static Result<GuestMessage> From(nlohmann::json message);
  // The error for a message that breaks the protocol: "the guest agent broke the protocol: ...".
  static Status Violation(const std::string& what);

  bool Has(const char* key) const { return json_.contains(key); }
  // The field's value; nullopt if it is missing (From has checked the type of every field the
  // host reads; a field of another type also gives nullopt). The protocol's integers are all
  // non-negative.
  std::optional<int64_t> Int(const char* key) const;
  std::optional<std::string_view> String(const char* key) const;
  std::optional<bool> Bool(const char* key) const;
  // A base64 field, decoded; nullopt if it is missing or not base64.
  std::optional<std::string> Bytes(const char* key) const;

  const nlohmann::json& json() const { return json_; }

 private:
  explicit GuestMessage(nlohmann::json message) : json_(std::move(message)) {}

  nlohmann::json json_;
};

}  // namespace airlock::vmlaunch
