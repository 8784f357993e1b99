// Throwaway certificates for TLS tests, made with OpenSSL's APIs into a fresh
// temporary directory (removed by the destructor): a CA, a server certificate
// for "localhost" and 127.0.0.1 signed by it, a client certificate signed by
// it, and a second, unrelated CA. Keys are EC P-256, valid for a day.
//
// Thread safety: construct once per test; then read-only.
#ifndef BATON_TESTS_FRAMEWORK_CLIENT_TLS_CERTS_H_
#define BATON_TESTS_FRAMEWORK_CLIENT_TLS_CERTS_H_

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace baton::testing {

class TestCertificates {
 public:
  TestCertificates() {
    char tmpl[] = "/tmp/baton-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Key ca_key = NewKey();
    Cert ca = Sign("baton test CA", ca_key.get(), nullptr, ca_key.get(), {}, true);
    Key other_key = NewKey();
    Cert other = Sign("another CA", other_key.get(), nullptr, other_key.get(), {}, true);
    Key server_key = NewKey();
    Cert server = Sign("localhost", server_key.get(), ca.get(), ca_key.get(),
                       "DNS:localhost,IP:127.0.0.1", false);
    Key client_key = NewKey();
    Cert client = Sign("client-1", client_key.get(), ca.get(), ca_key.get(),
                       "DNS:client-1", false);
    Key rogue_key = NewKey();
    Cert rogue = Sign("client-1", rogue_key.get(), other.get(), other_key.get(),
                      "DNS:client-1", false);
    WriteCert("ca.pem", ca.get());
    WriteCert("other-ca.pem", other.get());
    WriteCert("server.pem", server.get());
    WriteKey("server.key", server_key.get());
    WriteCert("client.pem", client.get());
    WriteKey("client.key", client_key.get());
    WriteCert("rogue-client.pem", rogue.get());
    WriteKey("rogue-client.key", rogue_key.get());
  }
  ~TestCertificates() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  // Paths of the PEM files.
  std::string ca() const { return Path("ca.pem"); }
  std::string other_ca() const { return Path("other-ca.pem"); }
  std::string server_cert() const { return Path("server.pem"); }
  std::string server_key() const { return Path("server.key"); }
  std::string client_cert() const { return Path("client.pem"); }
  std::string client_key() const { return Path("client.key"); }
  // A client certificate signed by the other CA.
  std::string rogue_client_cert() const { return Path("rogue-client.pem"); }
  std::string rogue_client_key() const { return Path("rogue-client.key"); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  using Key = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;
  using Cert = std::unique_ptr<X509, void (*)(X509*)>;

  static Key NewKey() {
    return Key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  }

  // A certificate for `cn` with `key`, signed by `issuer`/`issuer_key`
  // (self-signed when issuer is null).
  static Cert Sign(const std::string& cn, EVP_PKEY* key, X509* issuer,
                   EVP_PKEY* issuer_key, const std::string& san, bool is_ca) {
    static long serial = 1;
    Cert x(X509_new(), &X509_free);
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 24 * 3600);
    X509_set_pubkey(x.get(), key);
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
    std::vector<std::pair<int, std::string>> exts = {
        {NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
        {NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign"
                              : "critical,digitalSignature"},
        {NID_subject_key_identifier, "hash"}};
    if (!is_ca) exts.push_back({NID_ext_key_usage, "serverAuth,clientAuth"});
    if (!san.empty()) exts.push_back({NID_subject_alt_name, san});
    for (const auto& [nid, value] : exts) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      if (e == nullptr) std::abort();
      X509_add_ext(x.get(), e, -1);
      X509_EXTENSION_free(e);
    }
    if (X509_sign(x.get(), issuer_key, EVP_sha256()) == 0) std::abort();
    return x;
  }

  void WriteCert(const std::string& name, X509* x) const {
    FILE* f = std::fopen(Path(name).c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
  }
  void WriteKey(const std::string& name, EVP_PKEY* k) const {
    FILE* f = std::fopen(Path(name).c_str(), "w");
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }

  std::string dir_;
};

}  // namespace baton::testing

#endif  // BATON_TESTS_FRAMEWORK_CLIENT_TLS_CERTS_H_
