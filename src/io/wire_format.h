// The little of the protobuf wire format and of LevelDB's varint coding that a
// tensor-bundle reader needs. Decoders consume from the front of a
// string_view and throw a plain Error on malformed input; callers prefix the
// file and entry they were decoding.
#pragma once
#include <cstdint>
#include <string_view>

namespace unetind::wire {

uint64_t read_varint(std::string_view& in);   // varint32 and varint64 alike
uint32_t read_fixed32(std::string_view& in);  // little-endian
uint64_t read_fixed64(std::string_view& in);
std::string_view read_bytes(std::string_view& in, uint64_t size);

enum class WireType : uint32_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

// One protobuf message, field by field:
//   while (reader.next()) switch (reader.field()) { case 1: x = reader.varint(); break; ... default: reader.skip(); }
class MessageReader {
 public:
  explicit MessageReader(std::string_view message) : in_(message) {}
  bool next();  // false at the end of the message
  uint32_t field() const { return field_; }
  WireType type() const { return type_; }
  uint64_t varint();
  uint32_t fixed32();
  std::string_view bytes();  // a length-delimited field (string, sub-message)
  void skip();

 private:
  void expect(WireType type) const;

  std::string_view in_;
  uint32_t field_ = 0;
  WireType type_ = WireType::Varint;
};

}  // namespace unetind::wire
