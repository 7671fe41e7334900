#include "tests/neptune_emulator/websocket.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace fna::neptune_emulator {
namespace {

constexpr char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool IsControl(int opcode) { return (opcode & 0x8) != 0; }

}  // namespace

std::string WebSocketAccept(absl::string_view key) {
  const std::string input = absl::StrCat(key, kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha1(), nullptr);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

bool IsValidWebSocketKey(absl::string_view key) {
  std::string decoded;
  // Base64Unescape also takes unpadded input: 16 bytes are exactly 24 characters with padding.
  return key.size() == 24 && absl::Base64Unescape(key, &decoded) && decoded.size() == 16;
}

std::string ServerFrame(int opcode, absl::string_view payload) {
  std::string frame;
  frame.push_back(static_cast<char>(0x80 | opcode));
  const uint64_t n = payload.size();
  if (n < 126) {
    frame.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    frame.push_back(126);
    for (int shift = 8; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((n >> shift) & 0xFF));
  } else {
    frame.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((n >> shift) & 0xFF));
  }
  frame.append(payload.data(), payload.size());
  return frame;
}

std::string CloseFrame(int code) {
  if (code == 0) return ServerFrame(kWsClose, "");
  const char payload[2] = {static_cast<char>((code >> 8) & 0xFF), static_cast<char>(code & 0xFF)};
  return ServerFrame(kWsClose, absl::string_view(payload, 2));
}

FrameParse ParseClientFrame(absl::string_view data, uint64_t max_payload, ClientFrame* frame,
                            size_t* consumed) {
  if (data.size() < 2) return FrameParse::kIncomplete;
  const auto byte = [&data](size_t i) { return static_cast<uint8_t>(data[i]); };
  const bool fin = (byte(0) & 0x80) != 0;
  const int opcode = byte(0) & 0x0F;
  if ((byte(0) & 0x70) != 0) return FrameParse::kProtocolError;  // no extension was negotiated
  if (opcode != kWsContinuation && opcode != kWsText && opcode != kWsBinary && opcode != kWsClose &&
      opcode != kWsPing && opcode != kWsPong)
    return FrameParse::kProtocolError;
  if ((byte(1) & 0x80) == 0) return FrameParse::kProtocolError;  // clients must mask
  uint64_t length = byte(1) & 0x7F;
  size_t offset = 2;
  if (length >= 126) {
    const size_t bytes = length == 126 ? 2 : 8;
    if (data.size() < offset + bytes) return FrameParse::kIncomplete;
    length = 0;
    for (size_t i = 0; i < bytes; ++i) length = (length << 8) | byte(offset + i);
    offset += bytes;
  }
  if (IsControl(opcode) && (!fin || length > 125)) return FrameParse::kProtocolError;
  if (length > max_payload) return FrameParse::kTooBig;
  if (data.size() < offset + 4 + length) return FrameParse::kIncomplete;
  const size_t mask = offset;
  offset += 4;
  frame->fin = fin;
  frame->opcode = opcode;
  frame->payload.resize(length);
  for (uint64_t i = 0; i < length; ++i)
    frame->payload[i] = static_cast<char>(byte(offset + i) ^ byte(mask + i % 4));
  *consumed = offset + length;
  return FrameParse::kFrame;
}

}  // namespace fna::neptune_emulator
