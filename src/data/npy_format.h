// The NPY format shared by the .npy reader/writer and the .npz reader: the preamble
// (\x93NUMPY, version, header length), the strict parser of the header dict literal, and the
// decoding of the payload into a gpuml tensor.
//
//   NpyPreamble pre = read_npy_preamble(src, member_size);   // checks sizes, allocates nothing
//   Tensor t = read_npy_payload(src, pre);                   // byte-swapped, C order
//
// NPY element types map to gpuml dtypes: f2/f4/f8 -> f16/f32/f64, i1/i2/i4 -> i32, i8 -> i64,
// u1 -> u8, u2 -> i32, u4/u8 -> i64 (u8 values above INT64_MAX are rejected), b1 -> boolean.
// Object arrays ('O') hold pickled Python objects: they are refused, never unpickled.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "data/byte_source.h"

namespace gpuml::data {

struct NpyHeader {
  std::string descr;       // as written, e.g. "<f4"
  char byte_order = '<';   // '<', '>' or '|'
  char kind = 'f';         // 'f', 'i', 'u' or 'b'
  size_t item_bytes = 4;
  bool fortran_order = false;
  Shape shape;
};

struct NpyPreamble {
  int major_version = 1;
  NpyHeader header;
  uint64_t header_bytes = 0;   // magic + version + length field + dict
  uint64_t payload_bytes = 0;  // numel * item_bytes
};

// Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" strictly: exactly these
// three keys, each once, nothing else. `name` goes into error messages.
NpyHeader parse_npy_header_dict(std::string_view text, const std::string& name);

// The gpuml dtype that an NPY header decodes to.
DType npy_decoded_dtype(const NpyHeader& header);

// Reads and validates the preamble; `total_size` is the byte length of the whole .npy stream,
// which must equal header_bytes + payload_bytes exactly.
NpyPreamble read_npy_preamble(ByteSource& src, uint64_t total_size);
// Reads the payload that follows the preamble and converts it to a contiguous C-order tensor.
Tensor read_npy_payload(ByteSource& src, const NpyPreamble& preamble);

// The NPY v1.0 preamble (magic .. padded dict) for a little-endian C-order array; throws
// Unsupported for bf16, which NumPy cannot represent.
std::string npy_v1_preamble(DType dtype, const Shape& shape);

}  // namespace gpuml::data
