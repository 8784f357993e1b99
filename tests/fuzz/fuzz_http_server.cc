// libFuzzer target: the HTTP request path, bytes to response. The input is
// written to a real framework::HttpServer (127.0.0.1, ephemeral port, started
// in this process) serving the kv sample's routes through the request pipeline
// on an in-memory store; per input the harness connects, writes the bytes,
// shuts down its write side and reads until the server closes.
//
// Findings: a crash or sanitizer report anywhere in the server (it runs in this
// process, on its own threads); a connection the server leaves open, without
// sending anything, for kStallLimit after the client's EOF (a hang); and, as
// the one protocol oracle, a request whose last Transfer-Encoding is not
// `chunked` answered by more than one response (the body was parsed as a
// further request: request smuggling, issue 13).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "samples/kvservice/kv_service.h"
#include "storage/memory/memory_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace baton::fuzz {
namespace {

// A connection that neither sends nor closes this long after our EOF hangs.
constexpr auto kStallLimit = std::chrono::seconds(5);
// The server, pipeline and store are replaced after this many inputs, so that
// what the inputs stored does not grow without bound in a long run.
constexpr int kInputsPerServer = 20000;

class KvServer {
 public:
  KvServer() : store_(OpenStore()), pipeline_(*store_, clock_) {
    framework::Router router;
    if (absl::Status s = kvservice::RegisterKvRoutes(router); !s.ok()) {
      Die("RegisterKvRoutes: " + s.ToString());
    }
    framework::HttpServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.worker_threads = 2;
    auto server = framework::StartHttpServer(options, std::move(router), pipeline_);
    if (!server.ok()) Die("StartHttpServer: " + server.status().ToString());
    server_ = *std::move(server);
  }
  ~KvServer() { server_->Stop(); }
  uint16_t port() const { return server_->port(); }

 private:
  static std::unique_ptr<storage::MemoryStore> OpenStore() {
    auto store = storage::OpenMemoryStore();  // commits asynchronously, as RocksDB
    if (!store.ok()) Die("OpenMemoryStore: " + store.status().ToString());
    return *std::move(store);
  }

  std::unique_ptr<storage::MemoryStore> store_;
  framework::SimulatedClock clock_;
  framework::RequestPipeline pipeline_;
  std::unique_ptr<framework::HttpServer> server_;
};

// Sends `input` on a fresh connection to 127.0.0.1:port, half-closes, and
// returns everything the server sent until it closed.
std::string Exchange(uint16_t port, std::string_view input) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket: " + std::string(strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("connect: " + std::string(strerror(errno)));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string out;
  size_t sent = 0;
  bool write_open = true;
  if (input.empty()) {
    ::shutdown(fd, SHUT_WR);
    write_open = false;
  }
  auto last_progress = std::chrono::steady_clock::now();
  for (;;) {
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    int n = ::poll(&p, 1, 100);
    if (n < 0 && errno != EINTR) Die("poll: " + std::string(strerror(errno)));
    if (n > 0 && (p.revents & POLLOUT) && write_open) {
      ssize_t w = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<size_t>(w);
        last_progress = std::chrono::steady_clock::now();
      }
      // The server may close early (431, 413, 400): the rest cannot be sent.
      if (w < 0 && errno != EAGAIN && errno != EINTR) write_open = false;
      if (sent == input.size() || !write_open) {
        ::shutdown(fd, SHUT_WR);
        write_open = false;
      }
    }
    if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[16384];
      ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
      if (r == 0) break;  // closed by the server
      if (r < 0 && errno != EAGAIN && errno != EINTR) break;  // reset
      if (r > 0) {
        out.append(buf, static_cast<size_t>(r));
        last_progress = std::chrono::steady_clock::now();
      }
    }
    if (std::chrono::steady_clock::now() - last_progress > kStallLimit) {
      Die("hang: the server neither answered nor closed the connection " +
          std::to_string(kStallLimit.count()) + " s after the last byte (sent " +
          std::to_string(sent) + " of " + std::to_string(input.size()) +
          " bytes; received " + std::to_string(out.size()) + ")");
    }
  }
  ::close(fd);
  return out;
}

// The header block of the first request in `input` (without the request
// line), or nullopt when there is none or it has folded lines, whose meaning
// the oracle would have to guess.
std::optional<std::vector<absl::string_view>> FirstHeaderLines(absl::string_view input) {
  size_t end = input.find("\r\n\r\n");
  if (end == absl::string_view::npos) return std::nullopt;
  std::vector<absl::string_view> lines = absl::StrSplit(input.substr(0, end), "\r\n");
  lines.erase(lines.begin());
  for (absl::string_view l : lines) {
    if (!l.empty() && (l.front() == ' ' || l.front() == '\t')) return std::nullopt;
  }
  return lines;
}

// True when the first request carries Transfer-Encoding whose last coding is
// not `chunked`: its body length is then unknown, and the only safe answer
// is one error response and a closed connection (RFC 9112 6.3).
bool HasNonChunkedTransferEncoding(absl::string_view input) {
  auto lines = FirstHeaderLines(input);
  if (!lines) return false;
  bool present = false;
  std::string last;
  for (absl::string_view l : *lines) {
    size_t colon = l.find(':');
    if (colon == absl::string_view::npos) continue;
    if (!absl::EqualsIgnoreCase(l.substr(0, colon), "transfer-encoding")) continue;
    present = true;
    for (absl::string_view coding : absl::StrSplit(l.substr(colon + 1), ',')) {
      absl::string_view c = absl::StripAsciiWhitespace(coding);
      if (!c.empty()) last = absl::AsciiStrToLower(c);
    }
  }
  return present && last != "chunked";
}

// Final (non-1xx) responses at the start of `stream`, framed by their
// Content-Length; counting stops at the first one it cannot frame.
int CountFinalResponses(absl::string_view stream) {
  int count = 0;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t end = stream.find("\r\n\r\n", pos);
    if (end == absl::string_view::npos) break;
    absl::string_view head = stream.substr(pos, end - pos);
    if (!absl::StartsWith(head, "HTTP/1.") || head.size() < 12) break;
    int status = 0;
    if (!absl::SimpleAtoi(head.substr(9, 3), &status)) break;
    size_t length = 0;
    bool framed = false;
    for (absl::string_view l : absl::StrSplit(head, "\r\n")) {
      size_t colon = l.find(':');
      if (colon != absl::string_view::npos &&
          absl::EqualsIgnoreCase(l.substr(0, colon), "content-length")) {
        framed = absl::SimpleAtoi(absl::StripAsciiWhitespace(l.substr(colon + 1)), &length);
      }
    }
    if (status >= 200) ++count;
    if (!framed && status >= 200) break;
    pos = end + 4 + length;
  }
  return count;
}

KvServer* server = nullptr;
int inputs = 0;

}  // namespace
}  // namespace baton::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::fuzz;
  if (server == nullptr || ++inputs % kInputsPerServer == 0) {
    delete server;
    server = new KvServer();
  }
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string responses = Exchange(server->port(), input);
  if (HasNonChunkedTransferEncoding(absl::string_view(input.data(), input.size())) &&
      CountFinalResponses(responses) > 1) {
    Die("request smuggling: the first request has a Transfer-Encoding whose last "
        "coding is not chunked, and the server answered " +
        std::to_string(CountFinalResponses(responses)) +
        " responses on the connection (its body was read as further requests):\n" +
        responses.substr(0, 2000));
  }
  return 0;
}
