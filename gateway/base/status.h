// Status and Result<T>: error values instead of exceptions, for every fallible operation on the
// data path and in configuration loading. Plain values; no thread ownership.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace airlock {

// What kind of failure a Status is, for callers that act on the kind: they test the code, never
// the message (which is for people and may change).
enum class StatusCode : uint8_t {
  kOk,
  kError,             // a failure of no kind below
  kNotFound,          // what was asked for does not exist (a DNS name, a file, a session)
  kTimedOut,          // nothing happened within the time allowed
  kPermissionDenied,  // the operating system refused (EACCES, EPERM)
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(std::string message, StatusCode code = StatusCode::kError) {
    return Status(code == StatusCode::kOk ? StatusCode::kError : code, std::move(message));
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace airlock
