// GuestMessage: the protocol's field table, checked once per message, and accessors that test
// types instead of converting.
#include "vmlaunch/vm/guest_message.h"

#include <limits>

#include "gateway/base/base64.h"

namespace airlock::vmlaunch {
namespace {

using nlohmann::json;

enum class Kind { kInt, kString, kBool };

struct Field {
  const char* name;
  Kind kind;
  int64_t max = 0;  // kInt: the range is [0, max]
};

constexpr int64_t kAny = std::numeric_limits<int64_t>::max();

// Every field the host reads from the guest agent's replies (vmlaunch/guest/agent.h) and from
// the monitor's own replies. Others are ignored, never read.
constexpr Field kFields[] = {
    {"id", Kind::kInt, kAny},
    {"uptime_ms", Kind::kInt, kAny},
    {"exit_code", Kind::kInt, 255},
    {"signal", Kind::kInt, 128},
    {"duration_ms", Kind::kInt, kAny},
    {"teardown_ms", Kind::kInt, kAny},
    {"event", Kind::kString},
    {"error", Kind::kString},
    {"stream", Kind::kString},
    {"data", Kind::kString},
    {"timed_out", Kind::kBool},
    {"ok", Kind::kBool},
    {"job", Kind::kString},
    {"pid", Kind::kInt, kAny},
    {"output", Kind::kString},
    {"command", Kind::kString},
    {"running", Kind::kBool},
    {"cancelled", Kind::kBool},
    {"roots", Kind::kBool},
};

// The one nested field: the agent's list of jobs, each a flat object checked like a message.
constexpr size_t kMaxJobsListed = 256;

bool InRange(const json& v, int64_t max) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(max);
  return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= max;
}

std::string Expected(const Field& f) {
  switch (f.kind) {
    case Kind::kInt:
      return f.max == kAny ? "a non-negative integer"
                           : "an integer from 0 to " + std::to_string(f.max);
    case Kind::kString:
      return "a string";
    case Kind::kBool:
      return "true or false";
  }
  return "";
}

bool Matches(const json& v, const Field& f) {
  switch (f.kind) {
    case Kind::kInt:
      return InRange(v, f.max);
    case Kind::kString:
      return v.is_string();
    case Kind::kBool:
      return v.is_boolean();
  }
  return false;
}

}  // namespace

Status GuestMessage::Violation(const std::string& what) {
  return Status::Error("the guest agent broke the protocol: " + what);
}

Result<GuestMessage> GuestMessage::From(nlohmann::json message) {
  if (!message.is_object() || message.contains("invalid")) {
    return Violation("a line that is not one JSON object in UTF-8");
  }
  // Every message of the protocol is flat (nesting would only cost the host stack when the
  // monitor copies or relays it), but for "jobs": a bounded list of flat messages.
  for (const auto& [key, value] : message.items()) {
    if (key == "jobs" && value.is_array() && value.size() <= kMaxJobsListed) {
      for (const auto& job : value) {
        if (!job.is_object()) return Violation("a job that is not an object");
        if (auto checked = From(job); !checked.ok()) return checked.status();
      }
      continue;
    }
    if (value.is_structured()) return Violation("a field that holds an array or an object");
  }
  for (const Field& f : kFields) {
    auto it = message.find(f.name);
    if (it != message.end() && !Matches(*it, f)) {
      return Violation(std::string("\"") + f.name + "\" must be " + Expected(f));
    }
  }
  auto stream = message.find("stream");
  if (stream != message.end() && *stream != "stdout" && *stream != "stderr") {
    return Violation("\"stream\" must be \"stdout\" or \"stderr\"");
  }
  return GuestMessage(std::move(message));
}

std::optional<int64_t> GuestMessage::Int(const char* key) const {
  auto it = json_.find(key);
  if (it == json_.end() || !InRange(*it, kAny)) return std::nullopt;
  return it->get<int64_t>();
}

std::optional<std::string_view> GuestMessage::String(const char* key) const {
  auto it = json_.find(key);
  if (it == json_.end() || !it->is_string()) return std::nullopt;
  return std::string_view(*it->get_ptr<const std::string*>());
}

std::optional<bool> GuestMessage::Bool(const char* key) const {
  auto it = json_.find(key);
  if (it == json_.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::optional<std::string> GuestMessage::Bytes(const char* key) const {
  auto text = String(key);
  return text ? Base64Decode(*text) : std::nullopt;
}

}  // namespace airlock::vmlaunch
