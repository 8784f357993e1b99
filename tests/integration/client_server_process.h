// A baton-kvserver child process serving HTTP and gRPC on one data
// directory, restartable on the same ports after kill -9, for the retrying
// client's crash test (tests/integration/client_crash_test.cc) and the
// retry-after-crash benchmark (bench/client_bench.cc).
//
// Thread safety: not thread-safe; one owner thread starts and kills it (the
// ports may be read from any thread).
#ifndef BATON_TESTS_INTEGRATION_CLIENT_SERVER_PROCESS_H_
#define BATON_TESTS_INTEGRATION_CLIENT_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/spawn.h"

namespace baton::testing {

class KvServerProcess {
 public:
  // `binary`: path of baton-kvserver; `dir`: data, log and ready file.
  KvServerProcess(std::string binary, std::filesystem::path dir,
                  std::vector<std::string> extra_args = {})
      : binary_(std::move(binary)), dir_(std::move(dir)),
        extra_(std::move(extra_args)) {}
  ~KvServerProcess() { Kill9(); }

  // Starts the server (first time on ephemeral ports, later on the same
  // ports) and waits until it listens. Returns false with `error` set.
  bool Start(std::string* error) {
    const std::filesystem::path ready = dir_ / "ready";
    std::filesystem::remove(ready);
    const std::string log = (dir_ / "server.log").string();
    std::vector<std::string> args = {
        binary_, "--listen", "127.0.0.1:" + std::to_string(http_port_.load()),
        "--grpc-listen", "127.0.0.1:" + std::to_string(grpc_port_.load()),
        "--data-dir", (dir_ / "data").string(), "--ready-file", ready.string(),
        "--log-level", "warn"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    const int rc = baton::testing::SpawnWithLog(args, log, &pid_);
    if (rc != 0) {
      *error = "cannot start " + binary_;
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(ready)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) != 0) {
        pid_ = -1;
        *error = "server exited during start-up; see " + log;
        return false;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        *error = "server did not start; see " + log;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::ifstream f(ready);
    std::string http, grpc;
    f >> http >> grpc;
    http_port_ = static_cast<uint16_t>(std::stoi(http.substr(http.rfind(':') + 1)));
    grpc_port_ = static_cast<uint16_t>(std::stoi(grpc.substr(grpc.rfind(':') + 1)));
    return true;
  }

  // Arguments added to the next Start().
  void set_extra_args(std::vector<std::string> args) { extra_ = std::move(args); }

  // Waits up to `timeout` for the process to exit by itself; true if it did.
  bool WaitExit(std::chrono::milliseconds timeout, int* status = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        if (status) *status = st;
        return true;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  void Kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Exit code after SIGTERM (-1 if not a normal exit).
  int Terminate() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string http_endpoint() const {
    return "127.0.0.1:" + std::to_string(http_port_.load());
  }
  std::string grpc_endpoint() const {
    return "127.0.0.1:" + std::to_string(grpc_port_.load());
  }
  pid_t pid() const { return pid_; }

 private:
  std::string binary_;
  std::filesystem::path dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  std::atomic<uint16_t> http_port_{0}, grpc_port_{0};
};

}  // namespace baton::testing

#endif  // BATON_TESTS_INTEGRATION_CLIENT_SERVER_PROCESS_H_
