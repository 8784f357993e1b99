// TLS options of the server-side listeners (HTTP, gRPC, admin).
//
// Modern defaults, not configurable downwards: TLS 1.2 and 1.3 only, forward-
// secret AEAD cipher suites for TLS 1.2 (ECDHE with AES-GCM or ChaCha20),
// no compression, no renegotiation, the server's cipher order.
//
// Client certificates (mutual TLS): with client_ca_file set, the listener
// asks for a client certificate and verifies it against that CA bundle; the
// verified certificate's subject (RFC 2253 form, e.g. "CN=alice,O=Example")
// becomes the request's principal (framework/handler.h Request::principal),
// which scopes its request ids (framework/pipeline.h).
//
// Reload: the HTTP and admin listeners re-read the files on
// Server::ReloadTls() (baton servers call it on SIGHUP); the gRPC listener
// watches the files and picks up new ones within
// grpc_refresh_interval. A reload that fails keeps the previous
// certificate and reports why.
#ifndef BATON_FRAMEWORK_TLS_H_
#define BATON_FRAMEWORK_TLS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace baton::framework {

struct TlsServerOptions {
  // PEM certificate chain (leaf first) and its private key. Empty cert_file:
  // plain TCP (no TLS). Default: empty.
  std::string cert_file;
  std::string key_file;
  // PEM CA bundle that client certificates must chain to. Empty: no client
  // certificate is asked for. Default: empty.
  std::string client_ca_file;
  // With client_ca_file: refuse a handshake without a valid client
  // certificate (false: accept it, the request is then unauthenticated).
  // Default: true.
  bool require_client_cert = true;
  // How often the gRPC listener re-reads the files. Default: 10 s.
  absl::Duration grpc_refresh_interval = absl::Seconds(10);

  bool enabled() const { return !cert_file.empty(); }
};

// Checks that the files exist, parse, and that the key matches the
// certificate. kInvalidArgument naming the file and what is wrong.
[[nodiscard]] absl::Status CheckTlsServerOptions(const TlsServerOptions& options);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_TLS_H_
