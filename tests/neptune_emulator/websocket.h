#ifndef FNA_TESTS_NEPTUNE_EMULATOR_WEBSOCKET_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_WEBSOCKET_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

// The server side of RFC 6455 that the emulator's signal socket needs: the handshake's accept key, server
// frames, and parsing of client frames. Stateless free functions; thread-safe.
namespace fna::neptune_emulator {

// Opcodes (RFC 6455 §5.2).
inline constexpr int kWsContinuation = 0x0;
inline constexpr int kWsText = 0x1;
inline constexpr int kWsBinary = 0x2;
inline constexpr int kWsClose = 0x8;
inline constexpr int kWsPing = 0x9;
inline constexpr int kWsPong = 0xA;

// Close codes (RFC 6455 §7.4.1).
inline constexpr int kWsCloseNormal = 1000;
inline constexpr int kWsCloseGoingAway = 1001;
inline constexpr int kWsCloseProtocolError = 1002;
inline constexpr int kWsCloseTooBig = 1009;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)) (§4.2.2).
std::string WebSocketAccept(absl::string_view key);

// Whether `key` is a valid Sec-WebSocket-Key: padded base64 of 16 bytes (§4.2.1 item 5).
bool IsValidWebSocketKey(absl::string_view key);

// One unfragmented, unmasked server frame (FIN set, the shortest length encoding, §5.2).
std::string ServerFrame(int opcode, absl::string_view payload);
// A Close frame with `code` (and no reason); code 0 gives an empty Close frame.
std::string CloseFrame(int code);

// A frame received from a client, unmasked.
struct ClientFrame {
  bool fin = false;
  int opcode = 0;
  std::string payload;
};

enum class FrameParse {
  kFrame,          // `frame` and `consumed` are set
  kIncomplete,     // more bytes are needed
  kProtocolError,  // close with 1002: unmasked, reserved bits or opcode, bad control frame
  kTooBig,         // close with 1009: payload longer than the limit
};

// Parses the client frame at the start of `data`. Client frames must be masked (§5.1); control frames must
// be final and carry at most 125 bytes (§5.5).
FrameParse ParseClientFrame(absl::string_view data, uint64_t max_payload, ClientFrame* frame,
                            size_t* consumed);

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_WEBSOCKET_H_
