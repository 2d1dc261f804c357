// Fuzz target: what the credential broker reads from helpers, token endpoints and clients: exec
// and AWS credential_process output (credentials::ParseExecOutput, ParseAwsKeys, RFC 3339 times)
// and a client's SigV4-signed request head, re-signed (ParseSigV4Authorization, ResignSigV4). The
// first byte picks the parser. Checks that errors never quote a string of the input (it may be a
// token) and that re-signing never writes the secret key into a head.
#include <cctype>
#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "gateway/credentials/credential_source.h"
#include "gateway/credentials/sigv4.h"
#include "gateway/credentials/token_json.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace creds = airlock::credentials;

// The error message `parse` gives for `text` (empty when it parses).
using ParseError = std::string (*)(std::string_view);

// No string value of at least 8 characters in the JSON `text` is quoted by the error `parse`
// gives for it. A value found in the message is replaced, in the parsed document, by another of
// its length, and the message for that document must not hold the replacement: a quoted value
// moves with it, while the parser's own words (which the fuzzer learns, and can put in a value)
// stay where they are.
void CheckQuotesNothing(std::string_view text, ParseError parse) {
  const std::string message = parse(text);
  if (message.empty()) return;
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return;
  std::vector<nlohmann::json*> todo = {&doc};
  while (!todo.empty()) {
    nlohmann::json* j = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      const std::string value = j->get<std::string>();
      if (value.size() >= 8 && message.find(value) != std::string::npos) {
        const std::string other(value.size(), value[0] == 'q' ? 'z' : 'q');
        *j = other;
        FUZZ_CHECK(parse(doc.dump()).find(other) == std::string::npos);
        *j = value;
      }
    }
    if (j->is_structured()) {
      for (auto& child : *j) todo.push_back(&child);
    }
  }
}

std::string ExecError(std::string_view text) {
  auto token = creds::ParseExecOutput(text);
  return token.ok() ? std::string() : token.status().message();
}

std::string AwsError(std::string_view text) {
  auto keys = creds::ParseAwsKeys(text);
  return keys.ok() ? std::string() : keys.status().message();
}

// Lines: the request target, then headers as "Name: value".
void Resign(std::string_view text) {
  airlock::http::HttpHead head;
  head.method = "GET";
  size_t pos = 0;
  bool first = true;
  while (pos <= text.size() && head.headers.size() < 32) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (first) {
      head.target = std::string(line);
      first = false;
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      head.headers.push_back(
          {std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
  }
  if (const std::string* auth = head.Find("Authorization")) {
    (void)creds::ParseSigV4Authorization(*auth);
  }
  creds::Token keys;
  keys.key_id = "AKIAFUZZKEYID0000000";
  keys.value = "fuzz-secret-access-key-never-sent";
  keys.session_token = "fuzz-session-token";
  const auto now = creds::TimePoint(std::chrono::seconds(1767225600));
  auto refusal = creds::ResignSigV4(&head, head.target, keys, now, std::string_view("body"));
  if (refusal) {
    FUZZ_CHECK(!refusal->reason.empty() && !refusal->message.empty());
    return;
  }
  // The gateway never writes the secret itself (a client that already sent it, as the fuzzer
  // can, in any case, may see its own bytes echoed in SignedHeaders, whose names are lowered).
  std::string lowered(text);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lowered.find(keys.value) == std::string::npos) {
    for (const auto& h : head.headers) FUZZ_CHECK(h.value.find(keys.value) == std::string::npos);
  }
  const std::string* auth = head.Find("Authorization");
  FUZZ_CHECK(auth && auth->starts_with("AWS4-HMAC-SHA256 Credential=" + keys.key_id + "/"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckQuotesNothing(text, ExecError);
      break;
    case 1:
      CheckQuotesNothing(text, AwsError);
      break;
    case 2:
      (void)creds::ParseRfc3339(text);
      break;
    case 3:
      Resign(text);
      break;
  }
  return 0;
}
