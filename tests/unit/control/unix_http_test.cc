// UnixHttpRequest and ParseHttpAnswer: where an answer ends, what is refused, and one request
// against a real unix socket served by a thread of the test (what it received, how it answered).
#include "gateway/control/unix_http.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/unit/support/stand_in_server.h"

namespace airlock::control {
namespace {

using testing::ReadHttpRequest;
using testing::StandInServer;

TEST(ParseHttpAnswer, EndsAtTheContentLengthOrTheClose) {
  struct Case {
    std::string raw;
    bool closed;
    int status;  // 0: incomplete; -1: an error
    std::string body;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false, 200, "{}"},
      {"HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\n{}trailing", false, 200, "{}"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false, 0, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true, -1, ""},
      {"HTTP/1.1 204 No Content\r\n\r\n", false, 204, ""},
      {"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n{\"fault_message\":\"no\"}", false, 0, ""},
      {"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n{\"fault_message\":\"no\"}", true, 400,
       "{\"fault_message\":\"no\"}"},
      {"HTTP/1.1 200 OK\r\nContent-Le", false, 0, ""},
      {"HTTP/1.1 200 OK\r\nContent-Le", true, -1, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, -1, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, -1, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, -1, ""},
      {"SSH-2.0-OpenSSH\r\n\r\n", false, -1, ""},
      {"HTTP/1.1 2x0 OK\r\n\r\n", true, -1, ""},
      {"", true, -1, ""},
      {"HTTP/1.1 100 Continue\r\n\r\n", false, -1, ""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", true, -1, ""},
      {std::string(70000, 'a'), false, -1, ""},
  };
  for (const auto& c : cases) {
    auto answer = ParseHttpAnswer(c.raw, c.closed);
    SCOPED_TRACE(c.raw.substr(0, 60) + (c.closed ? " (closed)" : ""));
    if (c.status == -1) {
      EXPECT_FALSE(answer.ok());
    } else if (c.status == 0) {
      ASSERT_TRUE(answer.ok()) << answer.status().message();
      EXPECT_FALSE(answer->has_value());
    } else {
      ASSERT_TRUE(answer.ok()) << answer.status().message();
      ASSERT_TRUE(answer->has_value());
      EXPECT_EQ((*answer)->status, c.status);
      EXPECT_EQ((*answer)->body, c.body);
    }
  }
}

TEST(UnixHttpRequest, SendsTheRequestAndReadsAnAnswerThatComesInPieces) {
  std::string received;
  {
    StandInServer server(1, [&](int fd, int) {
      received = ReadHttpRequest(fd);
      // The answer in three writes, and the connection kept open as a keep-alive server would:
      // the client must stop at the Content-Length, not wait for the close.
      for (const char* part : {"HTTP/1.1 400 Bad", " Request\r\nContent-Length: 27\r\n\r\n",
                               "{\"fault_message\":\"paused\"}\n"}) {
        ASSERT_GT(::write(fd, part, std::strlen(part)), 0);
        std::this_thread::yield();
      }
      char c;
      (void)::read(fd, &c, 1);  // until the client closes
    });
    auto answer = UnixHttpRequest(server.path(), "PUT", "/snapshot/create", R"({"a":1})",
                                  std::chrono::seconds(10));
    ASSERT_TRUE(answer.ok()) << answer.status().message();
    EXPECT_EQ(answer->status, 400);
    EXPECT_EQ(answer->body, "{\"fault_message\":\"paused\"}\n");
  }
  EXPECT_EQ(received.rfind("PUT /snapshot/create HTTP/1.1\r\n", 0), 0u) << received;
  EXPECT_NE(received.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(received.find("\r\nContent-Length: 7\r\n"), std::string::npos);
  EXPECT_EQ(received.substr(received.size() - 7), R"({"a":1})");
}

TEST(UnixHttpRequest, AServerThatNeverAnswersIsATimeout) {
  StandInServer server(1, [](int fd, int) {
    (void)ReadHttpRequest(fd);
    char c;
    (void)::read(fd, &c, 1);  // says nothing until the client gives up and closes
  });
  auto answer = UnixHttpRequest(server.path(), "GET", "/", "", std::chrono::milliseconds(200));
  ASSERT_FALSE(answer.ok());
  EXPECT_NE(answer.status().message().find("no answer"), std::string::npos)
      << answer.status().message();
}

TEST(UnixHttpRequest, NothingListeningIsNotFound) {
  auto answer = UnixHttpRequest("/nonexistent/api.sock", "GET", "/", "", std::chrono::seconds(1));
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace airlock::control
