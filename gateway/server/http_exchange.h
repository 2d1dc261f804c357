// Http1Exchange: the HTTP/1.1 relay. Forwards one request at a time (keep-alive; pipelined
// requests wait in the client's buffer and are answered in order), streaming both bodies with
// back-pressure and re-framing them (chunked in, chunked out), forwarding 1xx answers
// (Expect: 100-continue), and switching to a byte tunnel after a 101 (WebSocket). Every request
// head after the first is handed to its host for admission before anything of it goes upstream;
// the same exchange serves cleartext HTTP and requests decrypted inside terminated TLS. Lives on
// its connection's worker thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "gateway/credentials/reflection.h"
#include "gateway/http/message_parser.h"
#include "gateway/server/relay.h"
#include "gateway/server/request_checks.h"
#include "gateway/server/tunnel_relay.h"

namespace airlock::server {

// One forwarded request, for its http.request record.
struct RequestSummary {
  std::string method;
  std::string path;  // query values redacted
  int status = 0;
  uint64_t bytes_up = 0;    // request head and body, as sent upstream
  uint64_t bytes_down = 0;  // response heads (1xx included) and body, as sent to the client
  std::chrono::milliseconds duration{0};
};

// What the exchange asks of its connection beyond the bytes.
class ExchangeHost : public virtual RelayHost {
 public:
  enum class Admission {
    kForward,  // allowed, and the upstream is ready for it
    kPending,  // allowed; the host is dialling and calls Http1Exchange::SendRequest() when ready
    kRefused,  // answered and closing: return at once
  };
  // A request head has been read into the exchange's parser: decide it.
  virtual Admission AdmitRequest(const http::HttpHead& head) = 0;
  // The destination of the request being forwarded.
  virtual const Target& target() const = 0;
  // Answers with a gateway response and closes once it is written: return at once.
  virtual void Refuse(const Refusal& refusal) = 0;
  virtual void AuditRequest(const RequestSummary& summary) = 0;
  // The upstream is not kept alive past this response; the next request dials again.
  virtual void DropUpstream() = 0;
  // Ends the connection once the client's output is written.
  virtual void CloseAfterFlush(const std::string& reason) = 0;
  // For the response to a request that carried an injected credential: the filter that keeps
  // it from coming back (credentials/reflection.h); null otherwise.
  virtual std::unique_ptr<credentials::ReflectionFilter> ResponseFilter() = 0;
  // A reflected credential was replaced in the response (`where`: "header:NAME" or "body").
  virtual void AuditReflection(const std::string& where) = 0;
  // The next piece of the request body being forwarded: a refusal (its leak record written)
  // when the body carries a placeholder that may not go to this destination. The exchange then
  // drops the upstream, reads the rest of the body into nothing, and calls RefuseForwarded().
  virtual std::optional<Refusal> RequestBodyLeak(std::string_view piece) = 0;
  // Refuses a request part of which (`bytes_up`) was forwarded; answers and closes.
  virtual void RefuseForwarded(const Refusal& refusal, uint64_t bytes_up) = 0;
  // For an admitted request with a body: 0 to stream it, or the largest body the host must see
  // whole before the head goes on (a credential written into it, a signature over it). A larger
  // body is refused with 413, never truncated.
  virtual size_t WholeBodyLimit() = 0;
  // The whole body of such a request is in: the host may rewrite head and body, or refuse.
  virtual std::optional<Refusal> RewriteRequest(http::HttpHead* head, std::string* body) = 0;
};

class Http1Exchange : public Relay {
 public:
  Http1Exchange(ExchangeHost& host, http::MessageParser& request, http::MessageParser& response,
                size_t max_head_bytes);

  // Sends the admitted request whose head is in the request parser. The upstream must be
  // connected. May close the connection: call last.
  void SendRequest();
  // Reads the next request head from the client's buffer (after a response, or first thing
  // inside terminated TLS). May close the connection: call last.
  void ReadNextHead();

  void OnClientRead() override;
  void OnClientWrite() override;
  void OnClientEof() override;
  void OnUpstreamRead() override;
  void OnUpstreamWrite() override;
  void OnUpstreamEof() override;
  void OnUpstreamError(bool timeout) override;

 private:
  enum class State { kReadingHead, kAdmitting, kBufferingBody, kSendingBody, kAwaitingResponse };

  void WriteHead();
  void PumpRequestBody();
  // kBufferingBody: reads the body whole (up to whole_body_limit_), then has the host rewrite
  // the request and sends it with a Content-Length.
  void PumpWholeBody();
  // Moves one slice of body bytes from `in` through `parser` to `out` (chunked anew when
  // `chunked`), counting them; the bytes used, or npos on a framing error.
  size_t MoveBody(evbuffer* in, evbuffer* out, http::MessageParser& parser, bool chunked,
                  bool upward);
  static void WriteBody(evbuffer* out, std::string_view piece, bool chunked);
  void HandleResponse();
  // A Content-Length response already read whole, with a reflection filter: filtered whole and
  // sent with its (new) length in one write.
  void SendWholeFiltered();
  void FinishExchange();

  ExchangeHost& host_;
  http::MessageParser& request_;
  http::MessageParser& response_;
  const size_t max_head_bytes_;
  State state_ = State::kReadingHead;
  std::unique_ptr<Tunnel> tunnel_;                             // after a 101
  std::unique_ptr<credentials::ReflectionFilter> reflection_;  // this response's, if any
  std::optional<Refusal> body_leak_;  // the request body carried a placeholder: discarding it
  size_t whole_body_limit_ = 0;       // kBufferingBody
  std::string whole_body_;            // kBufferingBody: the decoded body so far
  bool upstream_keep_alive_ = false;
  bool client_keep_ = false;  // this response keeps the client's connection (said in its head)
  http::BodyFraming out_framing_ = http::BodyFraming::kNone;  // its body, as sent to the client
  RequestSummary summary_;
  std::chrono::steady_clock::time_point started_;
};

// Parses a request head from the start of `in` into `parser` and drains it. kNeedMore leaves
// the buffer as it is.
http::MessageParser::HeadResult ReadRequestHead(evbuffer* in, http::MessageParser& parser,
                                                size_t max_head_bytes);

}  // namespace airlock::server
