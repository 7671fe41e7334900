#include "agent/version.h"

#include "absl/strings/str_cat.h"

namespace fna {

std::string VersionLine(absl::string_view program) {
  return absl::StrCat(program, " ", kVersion, " (commit ", BuildCommit(), ", flyteidl ", kFlyteidlVersion,
                      ")");
}

}  // namespace fna
