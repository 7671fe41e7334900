#ifndef FNA_AGENT_TESTING_TEST_PKI_H_
#define FNA_AGENT_TESTING_TEST_PKI_H_

// For tests only: a throw-away certificate authority and a server certificate it signed, written as PEM
// files.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>

namespace fna::testing {

struct TestPki {
  std::string ca_file;           // the CA's certificate
  std::string other_ca_file;     // an unrelated CA's certificate (did not sign the server's)
  std::string server_cert_file;  // for localhost and 127.0.0.1, signed by the CA
  std::string server_key_file;
  std::string client_cert_file;  // a client certificate (mutual TLS), signed by the CA
  std::string client_key_file;
};

namespace internal {

inline EVP_PKEY* NewKey() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) > 0 &&
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) > 0) {
    EVP_PKEY_keygen(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

inline void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension != nullptr) {
    X509_add_ext(cert, extension, -1);
    X509_EXTENSION_free(extension);
  }
}

// A certificate for `key` named `common_name`, signed by `issuer_key` (self-signed when `issuer` is null); a
// leaf's `usage` is its extended key usage.
inline X509* NewCert(EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key, long serial,
                     bool ca, const char* usage = "serverAuth") {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name),
                             -1, -1, 0);
  X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : cert;
  if (ca) {
    AddExtension(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    AddExtension(cert, signer, NID_subject_key_identifier, "hash");
  } else {
    AddExtension(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    AddExtension(cert, signer, NID_ext_key_usage, usage);
    AddExtension(cert, signer, NID_authority_key_identifier, "keyid");
  }
  X509_sign(cert, issuer_key, EVP_sha256());
  return cert;
}

inline bool WriteCert(const std::string& path, X509* cert) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return false;
  const bool ok = PEM_write_X509(file, cert) == 1;
  std::fclose(file);
  return ok;
}

inline bool WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return false;
  const bool ok = PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(file);
  return ok;
}

}  // namespace internal

// Writes ca.pem, other-ca.pem, server.pem, server-key.pem, client.pem and client-key.pem into `directory`
// (which must exist). Every call makes new keys and CAs.
inline bool WriteTestPki(const std::string& directory, TestPki* pki) {
  using namespace internal;  // NOLINT(build/namespaces)
  EVP_PKEY* ca_key = NewKey();
  EVP_PKEY* other_key = NewKey();
  EVP_PKEY* server_key = NewKey();
  EVP_PKEY* client_key = NewKey();
  X509* ca = NewCert(ca_key, "fna test CA", nullptr, ca_key, 1, true);
  X509* other = NewCert(other_key, "fna other CA", nullptr, other_key, 2, true);
  X509* server = NewCert(server_key, "localhost", ca, ca_key, 3, false);
  X509* client = NewCert(client_key, "fna test client", ca, ca_key, 4, false, "clientAuth");
  pki->ca_file = directory + "/ca.pem";
  pki->other_ca_file = directory + "/other-ca.pem";
  pki->server_cert_file = directory + "/server.pem";
  pki->server_key_file = directory + "/server-key.pem";
  pki->client_cert_file = directory + "/client.pem";
  pki->client_key_file = directory + "/client-key.pem";
  const bool ok = WriteCert(pki->ca_file, ca) && WriteCert(pki->other_ca_file, other) &&
                  WriteCert(pki->server_cert_file, server) && WriteKey(pki->server_key_file, server_key) &&
                  WriteCert(pki->client_cert_file, client) && WriteKey(pki->client_key_file, client_key);
  X509_free(ca);
  X509_free(other);
  X509_free(server);
  X509_free(client);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(other_key);
  EVP_PKEY_free(server_key);
  EVP_PKEY_free(client_key);
  return ok;
}

}  // namespace fna::testing

#endif  // FNA_AGENT_TESTING_TEST_PKI_H_
