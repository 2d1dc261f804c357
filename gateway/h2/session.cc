// nghttp2 behind h2::Session (see session.h): callbacks turned into Handler events, body
// queues read by nghttp2's data providers, and the limits on what a peer may send.
#include "gateway/h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>

namespace airlock::h2 {
namespace {

using Clock = std::chrono::steady_clock;

// Body bytes of one stream waiting to go into DATA frames, and how the stream ends.
struct Outbox {
  std::string data;
  size_t offset = 0;  // bytes of `data` already framed
  bool ended = false;
  bool deferred = false;  // nghttp2 is waiting for Write() or End()
  Fields trailers;
};

// A token bucket: a burst, refilled at a rate a second.
class RateLimit {
 public:
  RateLimit(uint32_t burst, uint32_t per_second)
      : burst_(burst), per_second_(per_second), tokens_(burst) {}
  bool Take() {
    Clock::time_point now = Clock::now();
    tokens_ = std::min<double>(
        burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * per_second_);
    last_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  const double burst_;
  const double per_second_;
  double tokens_;
  Clock::time_point last_ = Clock::now();
};

// One stream's header block as it arrives, field by field.
struct Block {
  Fields fields;
  size_t size = 0;  // RFC 9113 size: name + value + 32 per field
};

std::vector<nghttp2_nv> ToNv(const Fields& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const Field& f : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                  f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

Violation ViolationFor(int error) {
  switch (error) {
    case NGHTTP2_ERR_FLOODED:
      return {"h2_flood",
              "the peer sent control frames (SETTINGS, PING or RST_STREAM) faster than it read "
              "their acknowledgements"};
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
      return {"h2_continuation_flood", "the peer split a header block into too many frames"};
    case NGHTTP2_ERR_TOO_MANY_SETTINGS:
      return {"h2_settings_flood", "the peer sent too many settings in one frame"};
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
      return {"h2_bad_preface", "the client did not start with the HTTP/2 connection preface"};
    default:
      return {"h2_protocol_error",
              std::string("the peer broke the HTTP/2 protocol (") + nghttp2_strerror(error) + ")"};
  }
}

}  // namespace

struct Session::Impl {
  Impl(Role r, Handler& h, const Limits& l)
      : role(r),
        handler(h),
        limits(l),
        resets(l.reset_burst, l.resets_per_second),
        control(l.control_burst, l.control_per_second) {}
  ~Impl() { nghttp2_session_del(session); }

  const Role role;
  Handler& handler;
  const Limits limits;
  nghttp2_session* session = nullptr;
  std::unordered_map<int32_t, Outbox> outboxes;
  std::unordered_map<int32_t, Block> blocks;
  std::optional<Violation> violation;
  int32_t last_refused = 0;  // OnInvalidFrame's last report
  RateLimit resets;          // RST_STREAM received (rapid reset)
  RateLimit control;         // PING and SETTINGS received

  void Fail(Violation v, uint32_t code) {
    if (!violation) violation = std::move(v);
    nghttp2_session_terminate_session(session, code);
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    Block& b = self->blocks[frame->hd.stream_id];
    b = Block{};
    b.fields.reserve(16);  // a request's usual count: no regrowth field by field
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* self = static_cast<Impl*>(user);
    Block& b = self->blocks[frame->hd.stream_id];
    b.size += namelen + valuelen + 32;
    if (b.size > self->limits.max_header_list) {
      self->Fail(
          {"h2_header_list_too_large", "a header block was larger than " +
                                           std::to_string(self->limits.max_header_list) + " bytes"},
          Session::kEnhanceYourCalm);
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    b.fields.push_back({std::string(reinterpret_cast<const char*>(name), namelen),
                        std::string(reinterpret_cast<const char*>(value), valuelen)});
    return 0;
  }

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    const int32_t id = frame->hd.stream_id;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        auto it = self->blocks.find(id);
        if (it == self->blocks.end()) break;
        Fields fields = std::move(it->second.fields);
        self->blocks.erase(it);
        HeadersKind kind = HeadersKind::kTrailers;
        if (!fields.empty() && fields.front().name == ":status") {
          auto status = ParseStatus(fields.front().value);
          kind = status && *status < 200 ? HeadersKind::kInformational : HeadersKind::kResponse;
        } else if (!fields.empty() && fields.front().name.starts_with(":")) {
          kind = HeadersKind::kRequest;  // nghttp2 checked that pseudo-headers come first
        }
        const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
        // Marks the stream as one the handler knows (OnFrameSend tells refusals apart by it).
        if (kind == HeadersKind::kRequest)
          nghttp2_session_set_stream_user_data(self->session, id, self);
        self->handler.OnHeaders(id, kind, std::move(fields), end);
        if (end) self->handler.OnEndStream(id);
        break;
      }
      case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) self->handler.OnEndStream(id);
        break;
      case NGHTTP2_PING:
      case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !self->control.Take()) {
          self->Fail(
              {"h2_flood", "the peer sent PING or SETTINGS frames faster than " +
                               std::to_string(self->limits.control_per_second) + " a second"},
              Session::kEnhanceYourCalm);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_RST_STREAM:
        // Rapid reset cancels streams before they are answered; a reset of a stream this side
        // has ended (curl sends one after many a complete response) costs nothing.
        // (Counted for a sandbox's resets; an upstream cancelling what the gateway asked for is
        // no attack on it.)
        if (self->role == Role::kServer &&
            nghttp2_session_get_stream_local_close(self->session, id) == 0 &&
            !self->resets.Take()) {
          self->Fail({"h2_rapid_reset", "the peer reset streams faster than " +
                                            std::to_string(self->limits.resets_per_second) +
                                            " a second (rapid reset)"},
                     Session::kEnhanceYourCalm);
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len,
                         void* user) {
    static_cast<Impl*>(user)->handler.OnData(
        stream, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream, uint32_t error_code, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->outboxes.erase(stream);
    self->blocks.erase(stream);
    self->handler.OnStreamClose(stream, error_code);
    return 0;
  }

  // A request nghttp2 refuses by itself, said when it decides (the RST_STREAM it queues may
  // never be sent: the peer may reset the stream first, or the connection end): past the
  // concurrency limit before our SETTINGS were acknowledged (the stream never existed), or a
  // header block that breaks HTTP's rules (a block begun, never delivered).
  static int OnInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int error, void* user) {
    auto* self = static_cast<Impl*>(user);
    const int32_t id = frame->hd.stream_id;
    if (self->role != Role::kServer || frame->hd.type != NGHTTP2_HEADERS ||
        (error != NGHTTP2_ERR_REFUSED_STREAM && error != NGHTTP2_ERR_HTTP_HEADER &&
         error != NGHTTP2_ERR_HTTP_MESSAGING) ||
        nghttp2_session_get_stream_user_data(self->session, id) != nullptr ||
        id == self->last_refused) {
      return 0;
    }
    self->last_refused = id;  // one report per stream
    Fields partial;
    if (auto block = self->blocks.find(id); block != self->blocks.end()) {
      partial = std::move(block->second.fields);
      self->blocks.erase(block);
    }
    self->handler.OnRefused(
        id, error == NGHTTP2_ERR_REFUSED_STREAM ? Session::kRefusedStream : Session::kProtocolError,
        std::move(partial));
    return 0;
  }

  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    // nghttp2 ends a session on most protocol errors by itself: say why.
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
        !self->violation) {
      self->violation = Violation{"h2_protocol_error",
                                  std::string("the peer broke the HTTP/2 protocol (") +
                                      nghttp2_http2_strerror(frame->goaway.error_code) + ")"};
    }
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* self = static_cast<Impl*>(user);
    auto it = self->outboxes.find(stream);
    if (it == self->outboxes.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    Outbox& ob = it->second;
    size_t n = std::min(length, ob.data.size() - ob.offset);
    if (n == 0 && !ob.ended) {
      ob.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    std::memcpy(buf, ob.data.data() + ob.offset, n);
    ob.offset += n;
    if (ob.offset == ob.data.size()) {
      ob.data.clear();
      ob.offset = 0;
      if (ob.ended) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!ob.trailers.empty()) {
          std::vector<nghttp2_nv> nv = ToNv(ob.trailers);
          if (nghttp2_submit_trailer(session, stream, nv.data(), nv.size()) == 0) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          }
        }
      }
    } else if (ob.offset >= (64u << 10) && ob.offset * 2 >= ob.data.size()) {
      ob.data.erase(0, ob.offset);  // keep the queue from growing at its front
      ob.offset = 0;
    }
    if (n > 0) self->handler.OnBodySent(stream, n);
    return static_cast<ssize_t>(n);
  }

  nghttp2_data_provider Provider() {
    nghttp2_data_provider p;
    p.source.ptr = nullptr;
    p.read_callback = ReadBody;
    return p;
  }
};

std::optional<int> ParseStatus(std::string_view value) {
  if (value.size() != 3 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::Create(Role role, Handler& handler,
                                                 const Limits& limits) {
  auto impl = std::make_unique<Impl>(role, handler, limits);
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_option* opt = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return Status::Error("cannot set up an HTTP/2 session: out of memory");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Impl::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Impl::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Impl::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Impl::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Impl::OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, Impl::OnFrameSend);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, Impl::OnInvalidFrame);
  // Windows reopen only as the caller consumes (end-to-end flow control).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);  // nghttp2's own, above ours
  nghttp2_option_set_max_send_header_block_length(opt, 256 << 10);
  int rv = role == Role::kServer
               ? nghttp2_session_server_new2(&impl->session, cbs, impl.get(), opt)
               : nghttp2_session_client_new2(&impl->session, cbs, impl.get(), opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) {
    return Status::Error(std::string("cannot set up an HTTP/2 session: ") + nghttp2_strerror(rv));
  }
  std::vector<nghttp2_settings_entry> settings = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list},
  };
  if (role == Role::kClient) settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  if (nghttp2_submit_settings(impl->session, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) !=
          0 ||
      nghttp2_session_set_local_window_size(impl->session, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<int32_t>(limits.connection_window)) != 0) {
    return Status::Error("cannot set up an HTTP/2 session: settings refused");
  }
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<size_t> Session::Receive(std::string_view bytes) {
  ssize_t rv = nghttp2_session_mem_recv(
      impl_->session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv < 0) {
    if (!impl_->violation) {
      impl_->Fail(ViolationFor(static_cast<int>(rv)),
                  rv == NGHTTP2_ERR_FLOODED ? kEnhanceYourCalm : kProtocolError);
    } else {
      nghttp2_session_terminate_session(impl_->session, kEnhanceYourCalm);
    }
    return Status::Error(impl_->violation->message);
  }
  return static_cast<size_t>(rv);
}

std::string Session::TakeOutput(size_t max) {
  std::string out;
  TakeOutput(max, [&](std::string_view piece) { out.append(piece); });
  return out;
}

size_t Session::TakeOutput(size_t max, const std::function<void(std::string_view)>& sink) {
  size_t taken = 0;
  while (taken < max) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(impl_->session, &data);
    if (n <= 0) break;  // nothing more (or a fatal error: the session is then over)
    sink(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
    taken += static_cast<size_t>(n);
  }
  return taken;
}

bool Session::Alive() const {
  return nghttp2_session_want_read(impl_->session) || nghttp2_session_want_write(impl_->session);
}

Result<int32_t> Session::SubmitRequest(const Fields& fields, bool has_body) {
  std::vector<nghttp2_nv> nv = ToNv(fields);
  nghttp2_data_provider provider = impl_->Provider();
  int32_t id = nghttp2_submit_request(impl_->session, nullptr, nv.data(), nv.size(),
                                      has_body ? &provider : nullptr, nullptr);
  if (id < 0) return Status::Error(std::string("cannot send a request: ") + nghttp2_strerror(id));
  if (has_body) impl_->outboxes[id];
  return id;
}

Status Session::SubmitResponse(int32_t stream, const Fields& fields, bool has_body) {
  std::vector<nghttp2_nv> nv = ToNv(fields);
  nghttp2_data_provider provider = impl_->Provider();
  if (has_body) impl_->outboxes[stream];
  int rv = nghttp2_submit_response(impl_->session, stream, nv.data(), nv.size(),
                                   has_body ? &provider : nullptr);
  if (rv != 0) {
    impl_->outboxes.erase(stream);
    return Status::Error(std::string("cannot send a response: ") + nghttp2_strerror(rv));
  }
  return Status::Ok();
}

Status Session::SubmitInformational(int32_t stream, const Fields& fields) {
  std::vector<nghttp2_nv> nv = ToNv(fields);
  int rv = nghttp2_submit_headers(impl_->session, NGHTTP2_FLAG_NONE, stream, nullptr, nv.data(),
                                  nv.size(), nullptr);
  if (rv < 0) return Status::Error(std::string("cannot send headers: ") + nghttp2_strerror(rv));
  return Status::Ok();
}

void Session::Write(int32_t stream, std::string_view data) {
  auto it = impl_->outboxes.find(stream);
  if (it == impl_->outboxes.end() || it->second.ended) return;  // the stream is gone
  it->second.data.append(data);
  if (it->second.deferred) {
    it->second.deferred = false;
    nghttp2_session_resume_data(impl_->session, stream);
  }
}

void Session::End(int32_t stream, Fields trailers) {
  auto it = impl_->outboxes.find(stream);
  if (it == impl_->outboxes.end() || it->second.ended) return;
  it->second.ended = true;
  it->second.trailers = std::move(trailers);
  if (it->second.deferred) {
    it->second.deferred = false;
    nghttp2_session_resume_data(impl_->session, stream);
  }
}

size_t Session::Queued(int32_t stream) const {
  auto it = impl_->outboxes.find(stream);
  return it == impl_->outboxes.end() ? 0 : it->second.data.size() - it->second.offset;
}

void Session::Consume(int32_t stream, size_t n) {
  if (n > 0) nghttp2_session_consume(impl_->session, stream, n);
}

void Session::Reset(int32_t stream, uint32_t error_code) {
  nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, stream, error_code);
}

void Session::GoAway(uint32_t error_code) {
  nghttp2_session_terminate_session(impl_->session, error_code);
}

const std::optional<Violation>& Session::violation() const { return impl_->violation; }

}  // namespace airlock::h2
