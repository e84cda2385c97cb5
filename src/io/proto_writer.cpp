#include "io/proto_writer.h"

#include <cstring>

namespace gpuml {

void ProtoWriter::put_varint(uint64_t value) {
  while (value >= 0x80) {
    bytes_.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  bytes_.push_back(static_cast<char>(value));
}

void ProtoWriter::put_little_endian(uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) bytes_.push_back(static_cast<char>(value >> (8 * i)));
}

void ProtoWriter::add_varint(uint32_t field, uint64_t value) {
  put_tag(field, kVarint);
  put_varint(value);
}

void ProtoWriter::add_double(uint32_t field, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, 8);
  put_tag(field, kFixed64);
  put_little_endian(bits, 8);
}

void ProtoWriter::add_float(uint32_t field, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  put_tag(field, kFixed32);
  put_little_endian(bits, 4);
}

void ProtoWriter::add_bytes(uint32_t field, std::string_view bytes) {
  put_tag(field, kLengthDelimited);
  put_varint(bytes.size());
  bytes_.append(bytes);
}

}  // namespace gpuml
