// Fuzz target: an HTTP/2 session (h2::Session over nghttp2) reading what a hostile sandbox (the
// gateway as server) or a hostile upstream (the gateway as client, with requests in flight)
// sends, fed in pieces, while the handler answers and consumes as the relay does: submitting
// answers, bodies and trailers from inside callbacks. The first byte picks the role and the
// piece size. Checks that a refused input always names its violation, that output stops once
// the session is over, and that nothing crashes or leaks.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/h2/session.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace h2 = airlock::h2;

class Answerer : public h2::Handler {
 public:
  h2::Session* session = nullptr;
  bool server = true;

  void OnHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end) override {
    FUZZ_CHECK(!fields.empty() || kind == h2::HeadersKind::kTrailers);
    if (server && kind == h2::HeadersKind::kRequest) {
      // As the relay answers a refused stream: at once, with a body and (sometimes) trailers.
      if (session->SubmitResponse(id, {{":status", "403"}}, true).ok()) {
        session->Write(id, "denied");
        if (end) {
          session->End(id, {{"x-airlock-reason", "fuzz"}});
        } else {
          session->End(id);
        }
      }
    }
  }
  void OnData(int32_t id, std::string_view data) override { session->Consume(id, data.size()); }
  void OnEndStream(int32_t) override {}
  void OnBodySent(int32_t, size_t) override {}
  void OnStreamClose(int32_t, uint32_t) override {}
  void OnRefused(int32_t, uint32_t, airlock::h2::Fields) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool server = (data[0] & 1) == 0;
  const size_t piece = 1 + (data[0] >> 1);  // 1 to 128 bytes at a time
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  h2::Limits limits;
  limits.max_header_list = 4096;
  limits.reset_burst = 20;
  limits.resets_per_second = 1;
  limits.control_burst = 50;
  limits.control_per_second = 1;
  Answerer handler;
  handler.server = server;
  auto created =
      h2::Session::Create(server ? h2::Role::kServer : h2::Role::kClient, handler, limits);
  FUZZ_CHECK(created.ok());
  std::unique_ptr<h2::Session> session = std::move(created).value();
  handler.session = session.get();
  if (!server) {
    // Requests in flight, one with a body, as the relay sends them upstream.
    auto a = session->SubmitRequest({{":method", "GET"},
                                     {":scheme", "https"},
                                     {":authority", "api.example.test"},
                                     {":path", "/a"}},
                                    false);
    auto b = session->SubmitRequest({{":method", "POST"},
                                     {":scheme", "https"},
                                     {":authority", "api.example.test"},
                                     {":path", "/b"}},
                                    true);
    FUZZ_CHECK(a.ok() && b.ok());
    session->Write(b.value(), "body");
    session->End(b.value());
  }
  (void)session->TakeOutput(1 << 20);
  while (!rest.empty()) {
    std::string_view now = rest.substr(0, piece);
    rest.remove_prefix(now.size());
    auto r = session->Receive(now);
    if (!r.ok()) {
      FUZZ_CHECK(session->violation().has_value() && !session->violation()->reason.empty());
      (void)session->TakeOutput(1 << 20);  // the GOAWAY
      break;
    }
    (void)session->TakeOutput(1 << 20);
  }
  return 0;
}
