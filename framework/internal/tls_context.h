// Builds Boost.Asio SSL contexts for the listeners (framework/tls.h) and
// reads a peer certificate's subject. Internal to the framework.
#ifndef BATON_FRAMEWORK_INTERNAL_TLS_CONTEXT_H_
#define BATON_FRAMEWORK_INTERNAL_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "boost/asio/ssl/context.hpp"
#include "framework/tls.h"

namespace baton::framework::internal {

// A server context with the modern defaults of framework/tls.h.
// kInvalidArgument naming the file and the OpenSSL error.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const TlsServerOptions& options);

// The verified peer certificate's subject in RFC 2253 form, or "" when the
// peer sent none (or it did not verify).
std::string PeerSubject(SSL* ssl);

}  // namespace baton::framework::internal

#endif  // BATON_FRAMEWORK_INTERNAL_TLS_CONTEXT_H_
