#include "agent/storage/aws_http_client.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fna::storage {
namespace {

// Appends the UTF-8 encoding of `code_point`.
void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// Decodes the five predefined entities and character references; anything else stays as written.
std::string DecodeEntities(absl::string_view text) {
  std::string out;
  while (!text.empty()) {
    const size_t amp = text.find('&');
    absl::StrAppend(&out, text.substr(0, amp));
    if (amp == absl::string_view::npos) break;
    text.remove_prefix(amp);
    const size_t semicolon = text.find(';');
    const absl::string_view entity = text.substr(1, semicolon == absl::string_view::npos ? 0 : semicolon - 1);
    std::optional<std::string> decoded;
    if (entity == "amp") decoded = "&";
    if (entity == "lt") decoded = "<";
    if (entity == "gt") decoded = ">";
    if (entity == "quot") decoded = "\"";
    if (entity == "apos") decoded = "'";
    uint32_t code_point = 0;
    if (absl::StartsWith(entity, "#x") && absl::SimpleHexAtoi(entity.substr(2), &code_point) &&
        code_point <= 0x10FFFF) {
      decoded.emplace();
      AppendUtf8(code_point, &*decoded);
    } else if (absl::StartsWith(entity, "#") && absl::SimpleAtoi(entity.substr(1), &code_point) &&
               code_point <= 0x10FFFF) {
      decoded.emplace();
      AppendUtf8(code_point, &*decoded);
    }
    if (decoded.has_value()) {
      out.append(*decoded);
      text.remove_prefix(semicolon + 1);
    } else {
      out.push_back('&');
      text.remove_prefix(1);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> XmlElementText(absl::string_view xml, absl::string_view tag) {
  const std::string open = absl::StrCat("<", tag, ">");
  const size_t start = xml.find(open);
  if (start == absl::string_view::npos) return std::nullopt;
  const size_t text_start = start + open.size();
  const size_t end = xml.find(absl::StrCat("</", tag, ">"), text_start);
  if (end == absl::string_view::npos) return std::nullopt;
  return DecodeEntities(xml.substr(text_start, end - text_start));
}

AwsError ParseAwsError(absl::string_view body) {
  AwsError error;
  // STS nests <Error> in <ErrorResponse>; S3's root is <Error>. <Code> and <Message> come first in both.
  const size_t start = body.find("<Error>");
  if (start == absl::string_view::npos) return error;
  body.remove_prefix(start);
  error.code = XmlElementText(body, "Code").value_or("");
  error.message = XmlElementText(body, "Message").value_or("");
  return error;
}

std::string DescribeResponse(const http::HttpResponse& response) {
  const AwsError error = ParseAwsError(response.body);
  if (error.code.empty()) return absl::StrCat(response.status, " (no AWS error code)");
  if (error.message.empty()) return absl::StrCat(response.status, " ", error.code);
  return absl::StrCat(response.status, " ", error.code, ": ", error.message);
}

absl::StatusOr<http::ParsedUrl> ParseServiceEndpoint(absl::string_view endpoint, absl::string_view what) {
  absl::StatusOr<http::ParsedUrl> url = http::ParseUrl(endpoint);
  if (!url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", endpoint, "\" is not an http(s) URL: ", url.status().message()));
  }
  if (url->target != "/") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", endpoint, "\" has a path or a query; give the scheme, host and port only"));
  }
  return url;
}

AwsHttpClient::AwsHttpClient(http::HttpTransport* transport, const Clock* clock, RetryOptions retry,
                             std::function<double()> random)
    : transport_(transport),
      clock_(clock),
      retry_(retry),
      random_(std::move(random)),
      generator_(std::random_device{}()) {}

double AwsHttpClient::Random() const {
  if (random_) return random_();
  std::lock_guard<std::mutex> lock(random_mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator_);
}

absl::StatusOr<http::HttpResponse> AwsHttpClient::Send(absl::string_view what, absl::Time deadline,
                                                       const Builder& build,
                                                       const Retryable& retryable) const {
  std::string problem;
  for (int attempt = 0;; ++attempt) {
    const absl::Time now = clock_->Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": deadline passed", problem.empty() ? "" : absl::StrCat(" (", problem, ")")));
    }
    absl::StatusOr<http::HttpRequest> request = build();
    if (!request.ok()) return request.status();
    request->deadline = std::min(deadline, now + retry_.attempt_timeout);
    ++requests_;
    absl::StatusOr<http::HttpResponse> response = transport_->Send(*request);
    if (response.ok()) {
      if (!retryable(*response)) return response;
      problem = DescribeResponse(*response);
    } else if (absl::IsUnavailable(response.status()) || absl::IsDeadlineExceeded(response.status())) {
      problem = std::string(response.status().message());
    } else {
      return absl::Status(response.status().code(), absl::StrCat(what, ": ", response.status().message()));
    }
    const absl::Duration pause = Backoff(retry_, attempt, Random());
    if (clock_->Now() + pause >= deadline) {
      return absl::UnavailableError(absl::StrCat(what, ": ", problem, " (gave up after ", attempt + 1,
                                                 attempt == 0 ? " attempt" : " attempts",
                                                 ": the next would start past the deadline)"));
    }
    clock_->SleepFor(pause);
  }
}

}  // namespace fna::storage
