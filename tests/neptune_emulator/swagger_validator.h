#ifndef FNA_TESTS_NEPTUNE_EMULATOR_SWAGGER_VALIDATOR_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_SWAGGER_VALIDATOR_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace fna::neptune_emulator {

// An HTTP request as the validator sees it: decoded, not interpreted.
struct RequestView {
  std::string method;                                      // "GET", "POST", ... (compared case-insensitively)
  std::string path;                                        // the decoded path, without the query string
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order; names may repeat
  std::vector<std::pair<std::string, std::string>> headers;  // names compared case-insensitively
  std::string body;                                          // raw body; empty means "no body"
};

// One Swagger 2.0 document, used to find the operation of a request and to check the request against it — at
// run time, from the document itself, with no hand-written per-endpoint rules:
//   - path parameters, query parameters and header parameters: presence of the required ones, then type
//     (string, integer, number, boolean, array with collectionFormat multi/csv), format (int32, int64, uuid,
//     date-time, date) and enum;
//   - the body parameter: present when required, valid JSON, and valid against its schema.
// Schemas: $ref to #/definitions/..., type, format, required, properties, additionalProperties (schema form),
// items, enum, minimum/maximum (and exclusive*), minLength/maxLength, minItems/maxItems, allOf.
// Deliberate choices, stricter or looser than a Jackson-based server where the document is silent:
//   - unknown object properties are accepted (the real client sends `cliVersion`, which no schema declares);
//   - a JSON null counts as absent: accepted for an optional property, "required" for a required one;
//   - no type coercion: "5" is not an integer, 5.0 is not an integer, 1 is not a boolean;
//   - an integer without a format must fit in int64; int32/int64 are range-checked;
//   - a required query parameter with an empty value counts as missing.
// Error messages name the field: `body[3].assignInt.value: expected integer (int32), got "x"`,
// `query.experimentId: required`, `header.X-Neptune-Api-Token: required`, `path.userId: ...`. Only the first
// violation (in document order: parameters, then the body depth-first) is reported.
//
// Immutable after construction: safe for concurrent use from any number of threads.
class SwaggerSpec {
 public:
  struct Operation {
    std::string method;         // upper case
    std::string path_template;  // as written in the document, e.g. "/api/backend/v1/projects/get"
    std::string operation_id;
    const nlohmann::json* json = nullptr;  // the operation object; owned by the SwaggerSpec
  };

  // Reads and parses a document from a file.
  static absl::StatusOr<std::unique_ptr<SwaggerSpec>> Load(const std::string& file);
  // Takes a parsed document. Fails when it is not a Swagger 2.0 document with `paths`.
  static absl::StatusOr<std::unique_ptr<SwaggerSpec>> FromJson(nlohmann::json document);

  SwaggerSpec(const SwaggerSpec&) = delete;
  SwaggerSpec& operator=(const SwaggerSpec&) = delete;

  const nlohmann::json& document() const { return document_; }

  // The operation for `method` and a concrete `path` (templates such as /x/{id} match one non-empty segment;
  // a literal segment wins over a template). nullptr when none.
  const Operation* FindOperation(absl::string_view method, absl::string_view path) const;
  // Whether any method is declared for `path` (to tell 405 from 404).
  bool HasPath(absl::string_view path) const;
  const Operation* FindOperationById(absl::string_view operation_id) const;
  // A schema from #/definitions, or nullptr.
  const nlohmann::json* Definition(absl::string_view name) const;
  // Whether the operation declares a body parameter.
  static bool HasBodyParameter(const Operation& op);

  // Validates the parameters and the body of `request` against `op`. Returns the parsed body (a null json
  // when the operation has no body parameter or the optional body is absent). InvalidArgument names the
  // field.
  absl::StatusOr<nlohmann::json> ValidateRequest(const Operation& op, const RequestView& request) const;
  // Validates a response body against the schema the document declares for `status` (or "default"). OK when
  // the document declares no schema for it.
  absl::Status ValidateResponse(const Operation& op, int status, const nlohmann::json& body) const;
  // Validates `value` against `schema` (which may $ref this document's definitions); `where` prefixes errors.
  absl::Status ValidateValue(const nlohmann::json& schema, const nlohmann::json& value,
                             absl::string_view where) const;

 private:
  explicit SwaggerSpec(nlohmann::json document);
  void Index();

  nlohmann::json document_;
  std::vector<Operation> operations_;
  std::map<std::string, size_t> by_id_;
};

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_SWAGGER_VALIDATOR_H_
