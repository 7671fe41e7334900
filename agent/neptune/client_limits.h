#ifndef FNA_AGENT_NEPTUNE_CLIENT_LIMITS_H_
#define FNA_AGENT_NEPTUNE_CLIENT_LIMITS_H_

#include <cstdint>
#include <limits>

#include "absl/strings/string_view.h"

namespace fna::neptune {

// The limits the neptune 1.x Python client applies to a value before storing (offline) or sending it, so that
// the agent's runs hold what the client's would (neptune-protocol.md §3.13).

// neptune.attributes.atoms.string.String.MAX_VALUE_LENGTH, in Unicode characters.
inline constexpr int64_t kMaxStringCharacters = 16384;

// The first `max` Unicode characters of UTF-8 `text` (continuation bytes do not count, as Python counts a
// str). Sets `*truncated` when characters were cut.
inline absl::string_view TruncateCharacters(absl::string_view text, int64_t max, bool* truncated) {
  int64_t characters = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (characters == max) {
      *truncated = true;
      return text.substr(0, i);
    }
    ++characters;
  }
  *truncated = false;
  return text;
}

// Ints outside int32 are dropped by the client (assignInt carries an int32).
inline bool FitsInt32(int64_t value) {
  return value >= std::numeric_limits<int32_t>::min() && value <= std::numeric_limits<int32_t>::max();
}

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_CLIENT_LIMITS_H_
