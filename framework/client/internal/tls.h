// TLS plumbing shared by the client's HTTP and gRPC transports (not a public
// header): reading and checking the PEM files of TlsOptions, the OpenSSL
// client context, telling TLS failures that no retry can cure from transient
// ones, and a diagnosis that connects once more to explain a failure that
// the transport could not see in band (a plain-text client at a TLS server;
// a gRPC client whose certificate the server refused after the handshake).
//
// Thread safety: functions only; thread-safe.
#ifndef BATON_FRAMEWORK_CLIENT_INTERNAL_TLS_H_
#define BATON_FRAMEWORK_CLIENT_INTERNAL_TLS_H_

#include <cstdint>
#include <string>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boost/asio/ssl/context.hpp"
#include "framework/client/transport.h"

namespace baton::framework::client::internal {

// The PEM texts of TlsOptions, checked.
struct TlsMaterial {
  // The CA certificates (options.ca_file), or, with `system_bundle`, the
  // system's CA bundle file when it can be read; empty otherwise.
  std::string ca_pem;
  std::string cert_pem;  // Client certificate chain; empty: none.
  std::string key_pem;   // Its private key; empty: none.
};

// Reads and parses the files of `options` (each at most 1 MiB): the CA file
// must hold at least one certificate, the client certificate and key come
// together and must match. `system_bundle`: without a CA file, read the
// system's bundle (OpenSSL's default certificate file, SSL_CERT_FILE
// overriding) for transports that cannot use OpenSSL's default paths.
// Errors: kInvalidArgument naming the file and what is wrong with it.
[[nodiscard]] absl::StatusOr<TlsMaterial> LoadTlsMaterial(
    const TlsOptions& options, bool system_bundle);

// An OpenSSL client context: TLS 1.2 or later, the peer verified against
// the CA (the system's default paths when m.ca_pem is empty), the client
// certificate if any. Errors: kInvalidArgument.
[[nodiscard]] absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>>
MakeClientContext(const TlsMaterial& m);

// Sets the name that `ssl`'s peer certificate must carry, and SNI unless
// `name` is an IP literal (then the certificate's IP entries are checked).
void ExpectPeerName(SSL* ssl, const std::string& name);

// What an OpenSSL error reason (ERR_GET_REASON) says about a failed TLS
// connection.
enum class TlsFailure {
  kTransient,     // Anything else: a broken connection (retryable).
  kVerification,  // This end did not trust the peer's certificate.
  kRejected,      // The peer refused this end's certificate (an alert).
  kMismatch,      // The peer does not speak TLS, or no common version.
};
TlsFailure ClassifyTlsReason(int reason);

// The final status for a TLS failure of `kind` (not kTransient) at `where`
// ("host:port"): kUnauthenticated or kFailedPrecondition, with `detail`
// (OpenSSL's words) and a hint from `options`.
absl::Status TlsFailureStatus(TlsFailure kind, const std::string& where,
                              const std::string& detail, const TlsOptions& options);

// Connects to host:port once more to explain a failed attempt. Plain-text
// client (`context` null): kFailedPrecondition if the server answers a TLS
// ClientHello with TLS. TLS client: a handshake with `context`, checking
// `peer_name`, then a short wait for the server's first bytes (a TLS 1.3
// server refuses a client certificate only after the handshake):
// kUnauthenticated or kFailedPrecondition as TlsFailureStatus. OK: nothing
// final found (the server is down, or all looks well). Sends no request.
// Blocks at most `timeout`.
absl::Status DiagnoseTls(const std::string& host, uint16_t port,
                         boost::asio::ssl::context* context,
                         const std::string& peer_name, const TlsOptions& options,
                         absl::Duration timeout);

}  // namespace baton::framework::client::internal

#endif  // BATON_FRAMEWORK_CLIENT_INTERNAL_TLS_H_
