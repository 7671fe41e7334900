#include "agent/server/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/common/status_macros.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace fna::server {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

// `key "path"`, the start of every message about a file.
std::string Name(absl::string_view key, const std::string& path) {
  return absl::StrCat(key, " \"", path, "\"");
}

absl::StatusOr<std::string> ReadFile(absl::string_view key, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat(Name(key, path), ": cannot read"));
  std::string text;
  char buffer[1 << 14];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat(Name(key, path), ": cannot read"));
  return text;
}

std::unique_ptr<BIO, BioDeleter> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of the PEM file at `path`.
absl::StatusOr<std::unique_ptr<X509, X509Deleter>> FirstCertificate(absl::string_view key,
                                                                    const std::string& path) {
  FNA_ASSIGN_OR_RETURN(const std::string pem, ReadFile(key, path));
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(Bio(pem).get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(Name(key, path), ": holds no PEM certificate"));
  }
  return cert;
}

}  // namespace

absl::Status CheckTlsFiles(const AgentConfig& config) {
  if (config.tls_cert_file.empty()) return absl::OkStatus();
  FNA_ASSIGN_OR_RETURN(auto cert, FirstCertificate("server.tls_cert_file", config.tls_cert_file));
  FNA_ASSIGN_OR_RETURN(const std::string key_pem, ReadFile("server.tls_key_file", config.tls_key_file));
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(Bio(key_pem).get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name("server.tls_key_file", config.tls_key_file), ": holds no PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(Name("server.tls_key_file", config.tls_key_file),
                                                   " is not the key of ",
                                                   Name("server.tls_cert_file", config.tls_cert_file)));
  }
  if (!config.tls_client_ca_file.empty()) {
    FNA_RETURN_IF_ERROR(FirstCertificate("server.tls_client_ca_file", config.tls_client_ca_file).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const AgentConfig& config) {
  if (config.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  FNA_RETURN_IF_ERROR(CheckTlsFiles(config));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config.tls_key_file, config.tls_cert_file, config.tls_client_ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(config.tls_refresh_interval)));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!config.tls_client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace fna::server
