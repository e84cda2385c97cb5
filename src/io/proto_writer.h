// A minimal protobuf encoder: enough wire format for TensorBoard events (and later ONNX).
//
//   ProtoWriter value;
//   value.add_string(1, "loss/train");   // Summary.Value.tag
//   value.add_float(2, 0.25f);           // Summary.Value.simple_value
//   ProtoWriter summary;
//   summary.add_message(1, value);       // Summary.value
//   std::string bytes = summary.bytes();
//
// Fields are written in the order added; every add_* writes the field even when it holds the
// default value (proto3 readers accept that).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gpuml {

class ProtoWriter {
 public:
  // Wire types of the protobuf encoding.
  enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

  void add_varint(uint32_t field, uint64_t value);
  void add_int64(uint32_t field, int64_t value) { add_varint(field, static_cast<uint64_t>(value)); }
  void add_double(uint32_t field, double value);
  void add_float(uint32_t field, float value);
  void add_bytes(uint32_t field, std::string_view bytes);
  void add_string(uint32_t field, std::string_view text) { add_bytes(field, text); }
  void add_message(uint32_t field, const ProtoWriter& message) {
    add_bytes(field, message.bytes());
  }

  const std::string& bytes() const { return bytes_; }

 private:
  void put_varint(uint64_t value);
  void put_tag(uint32_t field, WireType type) { put_varint((uint64_t{field} << 3) | type); }
  void put_little_endian(uint64_t value, int bytes);

  std::string bytes_;
};

}  // namespace gpuml
