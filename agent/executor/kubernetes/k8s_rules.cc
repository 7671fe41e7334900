#include "agent/executor/kubernetes/k8s_rules.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace fna::executor::kubernetes {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, without the length rule.
bool IsQualifiedNamePart(absl::string_view text) {
  if (text.empty() || !IsAlnum(text.front()) || !IsAlnum(text.back())) return false;
  for (char c : text) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// Go's fmtFrac: writes the `precision` fractional digits of `v` without trailing zeros (and without the '.'
// when they are all zero) and returns v / 10^precision.
uint64_t AppendFraction(std::string* out, uint64_t v, int precision) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < precision; ++i) {
    const int digit = static_cast<int>(v % 10);
    print = print || digit != 0;
    if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
    v /= 10;
  }
  if (print) out->append(".").append(digits);
  return v;
}

}  // namespace

bool IsDns1123Label(absl::string_view text) {
  if (text.empty() || text.size() > kMaxDns1123LabelLength) return false;
  if (!IsLowerAlnum(text.front()) || !IsLowerAlnum(text.back())) return false;
  for (char c : text) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDns1123Subdomain(absl::string_view text) {
  if (text.empty() || text.size() > kMaxDns1123SubdomainLength) return false;
  for (absl::string_view part : absl::StrSplit(text, '.')) {
    if (!IsDns1123Label(part)) return false;
  }
  return true;
}

bool IsLabelValue(absl::string_view text) {
  if (text.size() > kMaxLabelValueLength) return false;
  return text.empty() || IsQualifiedNamePart(text);
}

bool IsQualifiedName(absl::string_view text) {
  absl::string_view name = text;
  if (const size_t slash = text.find('/'); slash != absl::string_view::npos) {
    if (!IsDns1123Subdomain(text.substr(0, slash))) return false;
    name = text.substr(slash + 1);
  }
  return name.size() <= 63 && IsQualifiedNamePart(name);
}

std::string SanitizeLabelValue(absl::string_view text) {
  std::string out;
  bool in_run = false;
  for (char c : text) {
    c = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (IsLowerAlnum(c) || c == '-') {
      out.push_back(c);
      in_run = false;
    } else if (!in_run) {
      out.push_back('-');
      in_run = true;
    }
  }
  if (out.size() > kMaxLabelValueLength) out.resize(kMaxLabelValueLength);
  const size_t first = out.find_first_not_of('-');
  if (first == std::string::npos) return "";
  const size_t last = out.find_last_not_of('-');
  return out.substr(first, last - first + 1);
}

std::string LabelValueOrSanitized(absl::string_view text) {
  return IsLabelValue(text) ? std::string(text) : SanitizeLabelValue(text);
}

std::optional<Quantity> ParseQuantity(absl::string_view text) {
  // value = sign * digits * 10^exponent10 * 1024^power, computed so that the usual values ("500m", "0.5",
  // "1Gi") are exact.
  size_t i = 0;
  long double sign = 1;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    if (text[i] == '-') sign = -1;
    ++i;
  }
  long double digits_value = 0;
  size_t digits = 0;
  int exponent10 = 0;
  while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
    digits_value = digits_value * 10 + (text[i] - '0');
    ++i;
    ++digits;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      digits_value = digits_value * 10 + (text[i] - '0');
      --exponent10;
      ++i;
      ++digits;
    }
  }
  if (digits == 0 || digits > 40) return std::nullopt;
  const absl::string_view suffix = text.substr(i);
  int power = 0;
  if (suffix.empty()) {
    // Plain number.
  } else if (suffix.size() == 2 && suffix[1] == 'i') {
    static constexpr absl::string_view kBinary = "KMGTPE";
    const size_t index = kBinary.find(suffix[0]);
    if (index == absl::string_view::npos) return std::nullopt;
    power = static_cast<int>(index) + 1;
  } else if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'n':
        exponent10 -= 9;
        break;
      case 'u':
        exponent10 -= 6;
        break;
      case 'm':
        exponent10 -= 3;
        break;
      case 'k':
        exponent10 += 3;
        break;
      case 'M':
        exponent10 += 6;
        break;
      case 'G':
        exponent10 += 9;
        break;
      case 'T':
        exponent10 += 12;
        break;
      case 'P':
        exponent10 += 15;
        break;
      case 'E':
        exponent10 += 18;
        break;
      default:
        return std::nullopt;
    }
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    // A decimal exponent: "e" or "E" followed by a signed integer.
    absl::string_view exponent = suffix.substr(1);
    int exponent_sign = 1;
    if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
      if (exponent[0] == '-') exponent_sign = -1;
      exponent.remove_prefix(1);
    }
    if (exponent.empty() || exponent.size() > 4) return std::nullopt;
    int value = 0;
    for (char c : exponent) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      value = value * 10 + (c - '0');
    }
    exponent10 += exponent_sign * value;
  } else {
    return std::nullopt;
  }
  long double value = digits_value * std::pow(1024.0L, static_cast<long double>(power));
  if (exponent10 >= 0) {
    value *= std::pow(10.0L, static_cast<long double>(exponent10));
  } else {
    value /= std::pow(10.0L, static_cast<long double>(-exponent10));
  }
  Quantity quantity;
  quantity.value = sign * value;
  if (!std::isfinite(quantity.value)) return std::nullopt;
  return quantity;
}

std::string FlyteBase32(absl::string_view data) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz123456";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
    buffer &= (1u << bits) - 1;
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::string GoDurationString(absl::Duration duration) {
  int64_t nanos = absl::ToInt64Nanoseconds(duration);
  const bool negative = nanos < 0;
  uint64_t u = negative ? 0 - static_cast<uint64_t>(nanos) : static_cast<uint64_t>(nanos);
  std::string out;
  if (u == 0) return "0s";
  if (u < 1000000000ULL) {
    std::string unit;
    int precision;
    if (u < 1000ULL) {
      precision = 0;
      unit = "ns";
    } else if (u < 1000000ULL) {
      precision = 3;
      unit = "\u00b5s";
    } else {
      precision = 6;
      unit = "ms";
    }
    std::string fraction;
    const uint64_t whole = AppendFraction(&fraction, u, precision);
    out = std::to_string(whole) + fraction + unit;
  } else {
    std::string fraction;
    uint64_t whole = AppendFraction(&fraction, u, 9);
    out = std::to_string(whole % 60) + fraction + "s";
    whole /= 60;
    if (whole > 0) {
      out = std::to_string(whole % 60) + "m" + out;
      whole /= 60;
      if (whole > 0) out = std::to_string(whole) + "h" + out;
    }
  }
  return negative ? "-" + out : out;
}

}  // namespace fna::executor::kubernetes
