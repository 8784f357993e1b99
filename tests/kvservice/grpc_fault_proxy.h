// A loopback TCP proxy that injects reply faults, for end-to-end tests of the
// retrying client over HTTP and gRPC: the request reaches the server (which
// executes and commits it), but the reply is dropped (the connection is cut)
// or held back past the client's attempt timeout.
//
// Faults are armed for the next N server->client chunks that carry data; arm
// them once the client's connection is warm so that handshake bytes are not
// what gets dropped.
//
// Thread safety: thread-safe. One thread per direction per connection.
#ifndef BATON_TESTS_KVSERVICE_GRPC_FAULT_PROXY_H_
#define BATON_TESTS_KVSERVICE_GRPC_FAULT_PROXY_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace baton::testing {

class FaultProxy {
 public:
  explicit FaultProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~FaultProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    ::close(listen_fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::close(fd);
  }

  uint16_t port() const { return port_; }

  // The next `n` server->client data chunks are dropped and their connection
  // cut (the client sees a reset/EOF after the server committed).
  void DropNextReplies(int n) { drop_.store(n); }
  // The next `n` server->client data chunks are held for `d` first.
  void DelayNextReplies(int n, std::chrono::milliseconds d) {
    delay_ms_.store(d.count());
    delay_.store(n);
  }
  int dropped() const { return dropped_.load(); }

 private:
  static bool Take(std::atomic<int>& counter) {
    int v = counter.load();
    while (v > 0) {
      if (counter.compare_exchange_weak(v, v - 1)) return true;
    }
    return false;
  }

  void AcceptLoop() {
    while (!stop_) {
      int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      int u = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(upstream_port_);
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(u);
        ::close(c);
        continue;
      }
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(c);
      fds_.push_back(u);
      threads_.emplace_back([this, c, u] { Pump(c, u, /*reply=*/false); });
      threads_.emplace_back([this, c, u] { Pump(u, c, /*reply=*/true); });
    }
  }

  void Pump(int from, int to, bool reply) {
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      if (reply && Take(drop_)) {
        ++dropped_;
        break;  // Cut both directions below.
      }
      if (reply && Take(delay_)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
      }
      if (::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(from, SHUT_RDWR);
    ::shutdown(to, SHUT_RDWR);
  }

  const uint16_t upstream_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> drop_{0}, delay_{0}, dropped_{0};
  std::atomic<int64_t> delay_ms_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

}  // namespace baton::testing

#endif  // BATON_TESTS_KVSERVICE_GRPC_FAULT_PROXY_H_
