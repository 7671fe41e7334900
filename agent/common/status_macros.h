#ifndef FNA_AGENT_COMMON_STATUS_MACROS_H_
#define FNA_AGENT_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns early with the status of `expr` when it is not OK. `expr` is evaluated once.
#define FNA_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status fna_status_ = (expr);       \
    if (!fna_status_.ok()) return fna_status_; \
  } while (0)

#define FNA_STATUS_CONCAT_INNER_(a, b) a##b
#define FNA_STATUS_CONCAT_(a, b) FNA_STATUS_CONCAT_INNER_(a, b)

// `FNA_ASSIGN_OR_RETURN(auto x, F());` assigns the value of an absl::StatusOr or returns its error.
#define FNA_ASSIGN_OR_RETURN(lhs, expr) \
  FNA_ASSIGN_OR_RETURN_IMPL_(FNA_STATUS_CONCAT_(fna_statusor_, __LINE__), lhs, expr)
#define FNA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#endif  // FNA_AGENT_COMMON_STATUS_MACROS_H_
