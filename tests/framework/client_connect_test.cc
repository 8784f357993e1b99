// The HTTP transport's handshake timeout (RetryOptions::connect_timeout /
// HttpTransportOptions::connect_timeout). Right after a service address moves,
// a SYN sent while the address is between hosts is lost and the kernel would
// resend it only after a second; with a connect timeout the attempt ends early
// as plainly unavailable (nothing was sent) and the retry sends a fresh SYN.
//
// A lost SYN is reproduced without root: a loopback listener whose accept
// queue is full (backlog 0, never accepting) drops further SYNs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/client/transport.h"
#include "gtest/gtest.h"

namespace baton::framework::client {
namespace {

// A listener on 127.0.0.1 whose accept queue is full: the next connect's SYN
// is dropped by the kernel.
class BlackHoleListener {
 public:
  BlackHoleListener() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(listener_, 0), 0);
    socklen_t len = sizeof a;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    // Fill the queue: connect until a handshake does not complete in 200 ms
    // (bounded: the queue holds one or two connections).
    for (int i = 0; i < 16 && !full_; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 200) == 0) full_ = true;
      fillers_.push_back(fd);
    }
  }
  ~BlackHoleListener() {
    for (int fd : fillers_) close(fd);
    close(listener_);
  }
  uint16_t port() const { return port_; }
  bool full() const { return full_; }

 private:
  int listener_ = -1;
  uint16_t port_ = 0;
  bool full_ = false;
  std::vector<int> fillers_;
};

Call Get() { return Call{.method = "GET", .target = "/kv/a", .body = "", .content_type = ""}; }

TEST(HttpConnectTimeoutTest, LostSynEndsTheAttemptAtTheConnectTimeout) {
  BlackHoleListener hole;
  ASSERT_TRUE(hole.full()) << "could not fill the listener's accept queue";
  HttpTransportOptions o;
  o.port = hole.port();
  o.connect_timeout = absl::Milliseconds(50);
  auto t = MakeHttpTransport(o);
  ASSERT_TRUE(t.ok()) << t.status();

  const absl::Time start = absl::Now();
  absl::StatusOr<Response> r = (*t)->Attempt(Get(), IdHeaders{}, absl::Seconds(5), true);
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(r.ok());
  // Unavailable, not DeadlineExceeded: nothing was sent, the outcome is not in doubt.
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("timed out"), absl::string_view::npos) << r.status();
  EXPECT_GE(took, absl::Milliseconds(45));
  EXPECT_LT(took, absl::Seconds(2)) << "the attempt waited for its whole timeout";
}

TEST(HttpConnectTimeoutTest, WithoutItTheAttemptTimeoutCoversTheHandshake) {
  BlackHoleListener hole;
  ASSERT_TRUE(hole.full()) << "could not fill the listener's accept queue";
  HttpTransportOptions o;
  o.port = hole.port();
  auto t = MakeHttpTransport(o);
  ASSERT_TRUE(t.ok()) << t.status();

  const absl::Time start = absl::Now();
  absl::StatusOr<Response> r =
      (*t)->Attempt(Get(), IdHeaders{}, absl::Milliseconds(300), true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
}

}  // namespace
}  // namespace baton::framework::client
