#include "agent/tracking/identity.h"

#include <openssl/sha.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace fna::tracking {
namespace {

constexpr size_t kExecutionIdHashLength = 10;  // 50 bits
constexpr size_t kCustomRunIdHashLength = 15;  // 75 bits

// Lower-case base32 (RFC 4648 alphabet, lower case) of the SHA-256 of `text`, first `length` characters.
std::string HashOf(absl::string_view text, size_t length) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : digest) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.size() < length) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
    if (out.size() == length) break;
  }
  return out;
}

// Lower-cases, maps every character outside [a-z0-9] to '-', collapses runs of '-', trims '-' at both ends,
// and keeps at most `max_length` characters (trimming a '-' the cut leaves at the end).
std::string Sanitize(absl::string_view text, size_t max_length) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  if (out.size() > max_length) out.resize(max_length);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

}  // namespace

AttemptIdentity DeriveIdentity(absl::string_view execution_name, absl::string_view node_id,
                               uint32_t retry_attempt, absl::string_view output_prefix) {
  AttemptIdentity id;
  const std::string readable = Sanitize(absl::StrCat(execution_name, "-", node_id, "-", retry_attempt),
                                        kMaxExecutionIdLength - kExecutionIdHashLength - 1);
  const std::string hash = HashOf(output_prefix, kCustomRunIdHashLength);
  // A DNS-1123 label must start with an alphanumeric character: the readable part does, or is empty.
  id.execution_id = readable.empty() ? absl::StrCat("t-", hash.substr(0, kExecutionIdHashLength))
                                     : absl::StrCat(readable, "-", hash.substr(0, kExecutionIdHashLength));
  const std::string run_prefix = Sanitize(execution_name, kMaxCustomRunIdLength - kCustomRunIdHashLength - 1);
  id.custom_run_id = run_prefix.empty() ? hash : absl::StrCat(run_prefix, "-", hash);
  return id;
}

}  // namespace fna::tracking
