#include "tests/fake_kube_apiserver/label_selector.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fna::fake_kube {
namespace {

constexpr char kLabelMessage[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr char kSubdomainMessage[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr char kQualifiedNameMessage[] =
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
constexpr char kLabelValueMessage[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

bool IsLowerAlnum(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool IsLabelPart(absl::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool IsNamePart(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// --- the selector lexer and parser (after apimachinery's labels.Lexer / labels.Parser) ---

enum class Token {
  kEnd,
  kIdentifier,
  kOpen,
  kClose,
  kComma,
  kNot,
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kIn,
  kNotIn
};

struct Lexeme {
  Token token;
  std::string text;
};

bool IsSpecial(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

absl::StatusOr<std::vector<Lexeme>> Lex(absl::string_view text) {
  std::vector<Lexeme> lexemes;
  size_t i = 0;
  while (true) {
    while (i < text.size() && absl::ascii_isspace(text[i])) ++i;
    if (i == text.size()) break;
    const char c = text[i];
    if (c == '(' || c == ')' || c == ',') {
      lexemes.push_back({c == '('   ? Token::kOpen
                         : c == ')' ? Token::kClose
                                    : Token::kComma,
                         std::string(1, c)});
      ++i;
    } else if (c == '!' || c == '=') {
      const bool doubled = i + 1 < text.size() && text[i + 1] == '=';
      if (c == '!') {
        lexemes.push_back(doubled ? Lexeme{Token::kNotEquals, "!="} : Lexeme{Token::kNot, "!"});
      } else {
        lexemes.push_back(doubled ? Lexeme{Token::kDoubleEquals, "=="} : Lexeme{Token::kEquals, "="});
      }
      i += doubled ? 2 : 1;
    } else if (c == '<' || c == '>') {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to parse requirement: operator '", std::string(1, c), "' is not supported"));
    } else {
      const size_t start = i;
      while (i < text.size() && !absl::ascii_isspace(text[i]) && !IsSpecial(text[i])) ++i;
      std::string word(text.substr(start, i - start));
      const Token token = word == "in" ? Token::kIn : word == "notin" ? Token::kNotIn : Token::kIdentifier;
      lexemes.push_back({token, std::move(word)});
    }
  }
  lexemes.push_back({Token::kEnd, ""});
  return lexemes;
}

absl::Status ParseError(const Lexeme& found, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("unable to parse requirement: found '", found.text, "', expected: ", expected));
}

absl::Status CheckKey(const std::string& key) {
  const std::string reason = CheckQualifiedName(key);
  if (reason.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unable to parse requirement: key: Invalid value: \"", key, "\": ", reason));
}

absl::Status CheckValue(const std::string& key, const std::string& value, size_t index) {
  const std::string reason = CheckLabelValue(value);
  if (reason.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("unable to parse requirement: values[", index, "][", key,
                                                 "]: Invalid value: \"", value, "\": ", reason));
}

}  // namespace

std::string CheckDns1123Label(absl::string_view value) {
  if (value.size() > 63) return "must be no more than 63 characters";
  return IsLabelPart(value) ? "" : kLabelMessage;
}

std::string CheckDns1123Subdomain(absl::string_view value) {
  if (value.size() > 253) return "must be no more than 253 characters";
  for (absl::string_view part : absl::StrSplit(value, '.')) {
    if (!IsLabelPart(part)) return kSubdomainMessage;
  }
  return "";
}

std::string CheckQualifiedName(absl::string_view value) {
  std::vector<absl::string_view> parts = absl::StrSplit(value, '/');
  if (parts.size() > 2) {
    return absl::StrCat(
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
  }
  const absl::string_view name = parts.back();
  if (parts.size() == 2) {
    if (parts[0].empty()) return "prefix part must be non-empty";
    const std::string prefix = CheckDns1123Subdomain(parts[0]);
    if (!prefix.empty()) return absl::StrCat("prefix part ", prefix);
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > 63) return "name part must be no more than 63 characters";
  return IsNamePart(name) ? "" : kQualifiedNameMessage;
}

std::string CheckLabelValue(absl::string_view value) {
  if (value.size() > 63) return "must be no more than 63 characters";
  return value.empty() || IsNamePart(value) ? "" : kLabelValueMessage;
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  absl::StatusOr<std::vector<Lexeme>> lexed = Lex(text);
  if (!lexed.ok()) return lexed.status();
  const std::vector<Lexeme>& lx = *lexed;
  LabelSelector selector;
  size_t i = 0;
  if (lx[i].token == Token::kEnd) return selector;
  while (true) {
    Requirement requirement;
    if (lx[i].token == Token::kNot) {
      ++i;
      if (lx[i].token != Token::kIdentifier) return ParseError(lx[i], "identifier");
      requirement.key = lx[i++].text;
      requirement.op = Operator::kDoesNotExist;
    } else {
      if (lx[i].token != Token::kIdentifier) return ParseError(lx[i], "!, identifier");
      requirement.key = lx[i++].text;
      switch (lx[i].token) {
        case Token::kEnd:
        case Token::kComma:
          requirement.op = Operator::kExists;
          break;
        case Token::kEquals:
        case Token::kDoubleEquals:
        case Token::kNotEquals: {
          requirement.op = lx[i].token == Token::kNotEquals ? Operator::kNotEquals : Operator::kEquals;
          ++i;
          std::string value;  // "k=" selects the empty value
          if (lx[i].token == Token::kIdentifier) {
            value = lx[i++].text;
          } else if (lx[i].token != Token::kEnd && lx[i].token != Token::kComma) {
            return ParseError(lx[i], "identifier");
          }
          if (absl::Status valid = CheckValue(requirement.key, value, 0); !valid.ok()) return valid;
          requirement.values.insert(std::move(value));
          break;
        }
        case Token::kIn:
        case Token::kNotIn: {
          requirement.op = lx[i].token == Token::kIn ? Operator::kIn : Operator::kNotIn;
          ++i;
          if (lx[i].token != Token::kOpen) return ParseError(lx[i], "(");
          ++i;
          if (lx[i].token == Token::kClose) {
            return absl::InvalidArgumentError(
                "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty");
          }
          size_t index = 0;
          while (true) {
            std::string value;
            if (lx[i].token == Token::kIdentifier) value = lx[i++].text;
            if (absl::Status valid = CheckValue(requirement.key, value, index++); !valid.ok()) return valid;
            requirement.values.insert(std::move(value));
            if (lx[i].token == Token::kClose) break;
            if (lx[i].token != Token::kComma) return ParseError(lx[i], ", or )");
            ++i;
          }
          ++i;  // ')'
          break;
        }
        default:
          return ParseError(lx[i], "=, ==, !=, in, notin");
      }
    }
    if (absl::Status valid = CheckKey(requirement.key); !valid.ok()) return valid;
    selector.requirements_.push_back(std::move(requirement));
    if (lx[i].token == Token::kEnd) return selector;
    if (lx[i].token != Token::kComma) return ParseError(lx[i], ",");
    ++i;
  }
}

bool LabelSelector::Matches(const std::map<std::string, std::string>& labels) const {
  for (const Requirement& r : requirements_) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    bool ok = false;
    switch (r.op) {
      case Operator::kExists:
        ok = has;
        break;
      case Operator::kDoesNotExist:
        ok = !has;
        break;
      case Operator::kEquals:
      case Operator::kIn:
        ok = has && r.values.count(it->second) > 0;
        break;
      case Operator::kNotEquals:
      case Operator::kNotIn:
        ok = !has || r.values.count(it->second) == 0;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace fna::fake_kube
