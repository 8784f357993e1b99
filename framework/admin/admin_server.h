// The operator plane: a small HTTP/1.1 listener of its own for status,
// drain, statistics, Prometheus metrics and health, never on the service
// port that clients reach (../shared/DESIGN.md, "Operator plane").
//
//   AdminRouter router;
//   router.Add("GET", "/healthz", [](const AdminRequest&) {
//     return AdminResponse::Text(200, "ok\n");
//   }, AdminAccess::kPublic);
//   auto admin = StartAdminServer({.listen = "unix:/run/kv/admin.sock"},
//                                 std::move(router));
//
// Where it listens (AdminServerOptions::listen):
//   "127.0.0.1:8081"      TCP; the default host is loopback. A non-loopback
//                         address is allowed only with a token.
//   "unix:/run/x.sock"    a unix socket created with mode 0600 before it is
//                         reachable (bound in a private 0700 directory, then
//                         renamed into place); a stale socket file left by a
//                         dead server is replaced, a live one is not.
//
// Access:
//   - with token_file, every route except kPublic ones (/healthz, /readyz)
//     needs `Authorization: Bearer <token>` (compared in constant time);
//     wrong or missing -> 401. The file is read at start and on
//     ReloadToken(); it must not be readable by group or others.
//   - requests that a web page could make are refused (403): any request
//     with an `Origin` header (browsers send it on cross-origin requests),
//     and, over TCP, a Host header that is not an IP literal or localhost
//     (DNS rebinding).
//   - bounded: header 8 KiB, body 64 KiB, 64 connections, 10 s timeouts.
// Handlers run on a small pool of their own (2 threads), so a slow status
// call never delays /healthz.
//
// Thread safety: StartAdminServer returns a running server; Stop() may be
// called from any thread, once or more.
#ifndef BATON_FRAMEWORK_ADMIN_ADMIN_SERVER_H_
#define BATON_FRAMEWORK_ADMIN_ADMIN_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::framework {

struct AdminRequest {
  std::string method;  // "GET"
  std::string path;    // "/baton/drain" (no query string)
  // Query parameters, percent-decoded ("slot" -> "1").
  std::map<std::string, std::string, std::less<>> query;
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;

  static AdminResponse Json(int status, std::string body) {
    return AdminResponse{status, "application/json", std::move(body)};
  }
  static AdminResponse Text(int status, std::string body) {
    return AdminResponse{status, "text/plain; charset=utf-8", std::move(body)};
  }
  // {"error":{"status":N,"code":code,"message":message}}
  static AdminResponse Error(int status, std::string_view code,
                             std::string_view message);
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

enum class AdminAccess {
  kToken,   // Needs the token when one is configured. Default.
  kPublic,  // Health probes: never needs the token.
};

class AdminRouter {
 public:
  // Errors: kInvalidArgument (bad method or path), kAlreadyExists.
  [[nodiscard]] absl::Status Add(std::string_view method, std::string_view path,
                                 AdminHandler handler,
                                 AdminAccess access = AdminAccess::kToken);

  struct Route {
    std::string method;
    std::string path;
    AdminHandler handler;
    AdminAccess access = AdminAccess::kToken;
  };
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

struct AdminServerOptions {
  // "host:port" or "unix:/path" (see the file comment). Port 0: ephemeral.
  // Default: 127.0.0.1:0.
  std::string listen = "127.0.0.1:0";
  // File holding the bearer token (surrounding white space ignored; at
  // least 16 characters). Empty: no token (then only loopback or a unix
  // socket are allowed). Default: empty.
  std::string token_file;
};

class AdminServer {
 public:
  virtual ~AdminServer() = default;
  // Where it listens, in the form `listen` takes ("127.0.0.1:43211",
  // "unix:/run/x.sock"), with the real port.
  virtual std::string address() const = 0;
  // Re-reads token_file. Errors as StartAdminServer's for the token; the
  // old token stays on error.
  [[nodiscard]] virtual absl::Status ReloadToken() = 0;
  // Stops listening, closes connections, removes the unix socket file.
  // Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

// Errors: kInvalidArgument (malformed listen, non-loopback TCP without a
// token, unreadable/short/too-open token file), kUnavailable (cannot bind,
// or a live server already owns the unix socket path).
[[nodiscard]] absl::StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const AdminServerOptions& options, AdminRouter router);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_ADMIN_ADMIN_SERVER_H_
