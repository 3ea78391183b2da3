#include <cstring>
#include <string>

#include "io/wire_format.h"
#include "unetind/error.h"

namespace unetind::wire {

uint64_t read_varint(std::string_view& in) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) throw Error("truncated varint");
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7fu) << shift;
    if (!(byte & 0x80u)) return value;
  }
  throw Error("varint longer than 10 bytes");
}

uint32_t read_fixed32(std::string_view& in) {
  if (in.size() < 4) throw Error("truncated fixed32");
  uint32_t v;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return v;
}

uint64_t read_fixed64(std::string_view& in) {
  if (in.size() < 8) throw Error("truncated fixed64");
  uint64_t v;
  std::memcpy(&v, in.data(), 8);
  in.remove_prefix(8);
  return v;
}

std::string_view read_bytes(std::string_view& in, uint64_t size) {
  if (size > in.size())
    throw Error("length " + std::to_string(size) + " runs past the end (" + std::to_string(in.size()) + " bytes left)");
  std::string_view out = in.substr(0, size);
  in.remove_prefix(size);
  return out;
}

bool MessageReader::next() {
  if (in_.empty()) return false;
  const uint64_t tag = read_varint(in_);
  field_ = static_cast<uint32_t>(tag >> 3);
  type_ = static_cast<WireType>(tag & 7u);
  if (field_ == 0) throw Error("protobuf field number 0");
  return true;
}

void MessageReader::expect(WireType type) const {
  if (type_ != type)
    throw Error("protobuf field " + std::to_string(field_) + " has wire type " +
                std::to_string(static_cast<uint32_t>(type_)) + ", expected " +
                std::to_string(static_cast<uint32_t>(type)));
}

uint64_t MessageReader::varint() {
  expect(WireType::Varint);
  return read_varint(in_);
}

uint32_t MessageReader::fixed32() {
  expect(WireType::Fixed32);
  return read_fixed32(in_);
}

std::string_view MessageReader::bytes() {
  expect(WireType::LengthDelimited);
  return read_bytes(in_, read_varint(in_));
}

void MessageReader::skip() {
  switch (type_) {
    case WireType::Varint:
      read_varint(in_);
      break;
    case WireType::Fixed64:
      read_fixed64(in_);
      break;
    case WireType::LengthDelimited:
      read_bytes(in_, read_varint(in_));
      break;
    case WireType::Fixed32:
      read_fixed32(in_);
      break;
    default:
      throw Error("protobuf field " + std::to_string(field_) + " has unsupported wire type " +
                  std::to_string(static_cast<uint32_t>(type_)));
  }
}

}  // namespace unetind::wire
