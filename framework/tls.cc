#include "framework/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "framework/internal/tls_context.h"

namespace baton::framework {
namespace {

// The most recent OpenSSL error as text (and the queue cleared).
std::string OpenSslError() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status Bad(const std::string& what, const std::string& file) {
  return absl::InvalidArgumentError(
      absl::StrCat("tls: ", what, " \"", file, "\": ", OpenSslError()));
}

}  // namespace

namespace internal {

absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const TlsServerOptions& options) {
  if (!options.enabled()) {
    return absl::InvalidArgumentError("tls: no certificate file");
  }
  if (options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls: cert_file is set but key_file is not");
  }
  ERR_clear_error();
  auto ctx = std::make_shared<boost::asio::ssl::context>(
      boost::asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_TICKET);
  if (SSL_CTX_set_cipher_list(
          c, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
             "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") !=
      1) {
    return absl::InternalError("tls: no usable TLS 1.2 cipher suite");
  }
  if (SSL_CTX_use_certificate_chain_file(c, options.cert_file.c_str()) != 1) {
    return Bad("cannot load certificate chain", options.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(c, options.key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1) {
    return Bad("cannot load private key", options.key_file);
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return Bad("private key does not match the certificate in",
               options.cert_file);
  }
  if (!options.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, options.client_ca_file.c_str(),
                                      nullptr) != 1) {
      return Bad("cannot load client CA bundle", options.client_ca_file);
    }
    STACK_OF(X509_NAME)* names =
        SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(c, names);
    SSL_CTX_set_verify(c,
                       SSL_VERIFY_PEER | (options.require_client_cert
                                              ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                              : 0),
                       nullptr);
    SSL_CTX_set_verify_depth(c, 8);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

std::string PeerSubject(SSL* ssl) {
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr &&
      X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
                         XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0 && data != nullptr) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  X509_free(cert);
  return out;
}

}  // namespace internal

absl::Status CheckTlsServerOptions(const TlsServerOptions& options) {
  if (!options.enabled()) {
    if (!options.key_file.empty() || !options.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "tls: key_file or client_ca_file given without cert_file");
    }
    return absl::OkStatus();
  }
  return internal::MakeServerTlsContext(options).status();
}

}  // namespace baton::framework
