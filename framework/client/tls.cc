#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "framework/client/internal/tls.h"
#include "openssl/err.h"
#include "openssl/pem.h"
#include "openssl/ssl.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace baton::framework::client::internal {
namespace {

namespace net = boost::asio;

constexpr size_t kMaxPemBytes = 1 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS ", what, " \"", path, "\" cannot be read"));
  }
  std::string text;
  char buf[16384];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxPemBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TLS ", what, " \"", path, "\" is larger than 1 MiB"));
    }
  }
  return text;
}

using BioPtr = std::unique_ptr<BIO, int (*)(BIO*)>;
BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// The certificates in a PEM text (the first one returned, owned).
std::unique_ptr<X509, void (*)(X509*)> FirstCertificate(const std::string& pem,
                                                        int* count) {
  std::unique_ptr<X509, void (*)(X509*)> first(nullptr, &X509_free);
  *count = 0;
  BioPtr bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (++*count == 1) {
      first.reset(x);
    } else {
      X509_free(x);
    }
  }
  ERR_clear_error();  // The end of the text reads as an error.
  return first;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsOptions& o,
                                            bool system_bundle) {
  TlsMaterial m;
  int count = 0;
  if (!o.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(o.ca_file, "CA file");
    if (!ca.ok()) return ca.status();
    FirstCertificate(*ca, &count);
    if (count == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TLS CA file \"", o.ca_file, "\" holds no PEM certificate"));
    }
    m.ca_pem = *std::move(ca);
  } else if (system_bundle) {
    const char* env = std::getenv(X509_get_default_cert_file_env());
    absl::StatusOr<std::string> ca =
        ReadPem(env != nullptr ? env : X509_get_default_cert_file(), "CA bundle");
    if (ca.ok()) m.ca_pem = *std::move(ca);
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS client certificate and key come together: give both or neither");
  }
  if (o.cert_file.empty()) return m;
  absl::StatusOr<std::string> cert = ReadPem(o.cert_file, "certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(o.key_file, "key");
  if (!key.ok()) return key.status();
  auto leaf = FirstCertificate(*cert, &count);
  if (!leaf) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS certificate \"", o.cert_file, "\" holds no PEM certificate"));
  }
  BioPtr bio = MemBio(*key);
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  ERR_clear_error();
  if (!pkey) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key \"", o.key_file, "\" holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key \"", o.key_file, "\" does not belong to the certificate \"",
        o.cert_file, "\""));
  }
  m.cert_pem = *std::move(cert);
  m.key_pem = *std::move(key);
  return m;
}

absl::StatusOr<std::unique_ptr<net::ssl::context>> MakeClientContext(
    const TlsMaterial& m) {
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_verify_mode(net::ssl::verify_peer);
  boost::system::error_code ec;
  if (m.ca_pem.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->add_certificate_authority(net::buffer(m.ca_pem), ec);
  }
  if (!ec && !m.cert_pem.empty()) {
    ctx->use_certificate_chain(net::buffer(m.cert_pem), ec);
    if (!ec) ctx->use_private_key(net::buffer(m.key_pem), net::ssl::context::pem, ec);
  }
  ERR_clear_error();
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("TLS set-up failed: ", ec.message()));
  }
  return ctx;
}

void ExpectPeerName(SSL* ssl, const std::string& name) {
  boost::system::error_code ec;
  net::ip::make_address(name, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
  }
}

TlsFailure ClassifyTlsReason(int reason) {
  switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return TlsFailure::kVerification;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_HTTP_REQUEST:
      return TlsFailure::kMismatch;
    default:
      break;
  }
  // An alert from the peer: OpenSSL reports alert N as reason 1000 + N.
  if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
    switch (reason - SSL_AD_REASON_OFFSET) {
      case SSL3_AD_BAD_CERTIFICATE:
      case SSL3_AD_UNSUPPORTED_CERTIFICATE:
      case SSL3_AD_CERTIFICATE_REVOKED:
      case SSL3_AD_CERTIFICATE_EXPIRED:
      case SSL3_AD_CERTIFICATE_UNKNOWN:
      case TLS1_AD_UNKNOWN_CA:
      case TLS1_AD_ACCESS_DENIED:
      case TLS13_AD_CERTIFICATE_REQUIRED:
        return TlsFailure::kRejected;
      case SSL3_AD_HANDSHAKE_FAILURE:
      case TLS1_AD_PROTOCOL_VERSION:
      case TLS1_AD_INSUFFICIENT_SECURITY:
        return TlsFailure::kMismatch;
      default:
        break;
    }
  }
  return TlsFailure::kTransient;
}

absl::Status TlsFailureStatus(TlsFailure kind, const std::string& where,
                              const std::string& detail, const TlsOptions& o) {
  switch (kind) {
    case TlsFailure::kVerification:
      return absl::UnauthenticatedError(absl::StrCat(
          "TLS: the certificate of ", where, " is not trusted: ", detail,
          o.ca_file.empty() ? std::string(" (checked against the system CA store)")
                            : absl::StrCat(" (checked against ", o.ca_file, ")")));
    case TlsFailure::kRejected:
      return absl::UnauthenticatedError(absl::StrCat(
          "TLS: ", where, " refused this client's certificate (", detail, ")",
          o.cert_file.empty() ? "; it may require one (mTLS)" : ""));
    case TlsFailure::kMismatch:
      return absl::FailedPreconditionError(absl::StrCat(
          "TLS: ", where, " does not speak TLS 1.2 or later (", detail,
          "); is it a plain-text server?"));
    case TlsFailure::kTransient:
      break;
  }
  return absl::OkStatus();
}

absl::Status DiagnoseTls(const std::string& host, uint16_t port,
                         net::ssl::context* context, const std::string& peer_name,
                         const TlsOptions& options, absl::Duration timeout) {
  const std::string where = absl::StrCat(host, ":", port);
  try {
    net::io_context ioc;
    // The plain-text case asks only "does it speak TLS at all?".
    std::unique_ptr<net::ssl::context> anything;
    if (context == nullptr) {
      anything = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
      anything->set_verify_mode(net::ssl::verify_none);
    }
    net::ssl::stream<net::ip::tcp::socket> stream(ioc, context ? *context : *anything);
    bool cert_requested = false;
    if (context != nullptr) {
      ExpectPeerName(stream.native_handle(), peer_name);
      // Called by OpenSSL only when the server asks for a client certificate.
      SSL_set_cert_cb(
          stream.native_handle(),
          +[](SSL*, void* arg) {
            *static_cast<bool*>(arg) = true;
            return 1;
          },
          &cert_requested);
    }
    net::ip::tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return absl::OkStatus();
    boost::system::error_code failure;
    bool handshaken = false;
    char byte = 0;
    net::async_connect(
        stream.next_layer(), endpoints,
        [&](boost::system::error_code e, const net::ip::tcp::endpoint&) {
          if (e) return;
          stream.async_handshake(net::ssl::stream_base::client,
                                 [&](boost::system::error_code h) {
                                   if (h) {
                                     failure = h;
                                     return;
                                   }
                                   handshaken = true;
                                   if (context == nullptr) return;
                                   stream.async_read_some(
                                       net::buffer(&byte, 1),
                                       [&](boost::system::error_code r, size_t) {
                                         failure = r;
                                       });
                                 });
        });
    ioc.run_for(absl::ToChronoMilliseconds(timeout));
    const bool ssl_failure = failure.category() == net::error::get_ssl_category();
    const int reason = ssl_failure ? ERR_GET_REASON(static_cast<unsigned long>(failure.value())) : 0;
    const long verify = SSL_get_verify_result(stream.native_handle());
    ERR_clear_error();
    if (context == nullptr) {
      // A completed handshake, or a TLS alert: the server speaks TLS.
      if (handshaken || (ssl_failure && reason > SSL_AD_REASON_OFFSET)) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, " speaks TLS and closed this plain-text connection: use TLS"));
      }
      return absl::OkStatus();
    }
    // A server that asked for a client certificate and then closed the
    // connection without a byte (gRPC's does so after a TLS 1.3 handshake,
    // without an alert) refused the certificate.
    if (handshaken && cert_requested &&
        (failure == net::ssl::error::stream_truncated || failure == net::error::eof)) {
      return TlsFailureStatus(TlsFailure::kRejected, where,
                              "it asked for a client certificate, then closed "
                              "the connection without a word",
                              options);
    }
    if (!ssl_failure) return absl::OkStatus();
    const TlsFailure kind = ClassifyTlsReason(reason);
    return TlsFailureStatus(kind, where,
                            kind == TlsFailure::kVerification
                                ? X509_verify_cert_error_string(verify)
                                : failure.message(),
                            options);
  } catch (const std::exception&) {
    // Asio reports resource exhaustion (no descriptors) by exceptions here.
    return absl::OkStatus();
  }
}

}  // namespace baton::framework::client::internal
