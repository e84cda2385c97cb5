#include "data/idx.h"

#include <cstring>
#include <vector>

#include "data/byte_source.h"

namespace gpuml::data {
namespace {

struct IdxType {
  uint8_t code;
  const char* name;
  size_t bytes;
  DType dtype;
};

constexpr IdxType kIdxTypes[] = {
    {0x08, "u8", 1, DType::u8},   {0x09, "i8", 1, DType::i32},  {0x0B, "i16", 2, DType::i32},
    {0x0C, "i32", 4, DType::i32}, {0x0D, "f32", 4, DType::f32}, {0x0E, "f64", 8, DType::f64},
};

uint64_t load_be(const uint8_t* p, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// Decodes big-endian elements of `type` from `src` into the contiguous tensor `out`.
void decode_be(const IdxType& type, const uint8_t* src, Tensor& out) {
  int64_t n = out.numel();
  switch (type.code) {
    case 0x09: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int8_t>(src[i]);
      break;
    }
    case 0x0B: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int16_t>(load_be(src + 2 * i, 2));
      break;
    }
    case 0x0C: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int32_t>(static_cast<uint32_t>(load_be(src + 4 * i, 4)));
      break;
    }
    case 0x0D: {
      float* dst = out.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(load_be(src + 4 * i, 4));
        std::memcpy(&dst[i], &bits, 4);
      }
      break;
    }
    case 0x0E: {
      double* dst = out.data<double>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t bits = load_be(src + 8 * i, 8);
        std::memcpy(&dst[i], &bits, 8);
      }
      break;
    }
    default: GPUML_FAIL(ErrorKind::Internal, "IDX type 0x{:02x} has no decoder", type.code);
  }
}

}  // namespace

Tensor read_idx(const std::string& path) {
  std::unique_ptr<ByteSource> src = open_byte_source(path);
  uint8_t magic[4];
  read_exact(*src, magic, 4, "IDX header");
  GPUML_CHECK_KIND(ErrorKind::Io, magic[0] == 0 && magic[1] == 0,
                   "{}: not an IDX file: magic starts with {:02x} {:02x}, expected 00 00", path, magic[0],
                   magic[1]);
  const IdxType* type = nullptr;
  for (const IdxType& t : kIdxTypes)
    if (t.code == magic[2]) type = &t;
  GPUML_CHECK_KIND(ErrorKind::Io, type != nullptr,
                   "{}: unknown IDX element type 0x{:02x} (expected 08 u8, 09 i8, 0b i16, 0c i32, 0d f32, 0e f64)",
                   path, magic[2]);
  int ndims = magic[3];
  GPUML_CHECK_KIND(ErrorKind::Io, ndims >= 1 && ndims <= kIdxMaxDims, "{}: IDX header has {} dims, expected 1..{}",
                   path, ndims, kIdxMaxDims);

  std::vector<uint8_t> dim_bytes(4 * static_cast<size_t>(ndims));
  read_exact(*src, dim_bytes.data(), dim_bytes.size(), "IDX dimensions");
  Shape shape(ndims);
  uint64_t count = 1;
  bool overflow = false;
  for (int d = 0; d < ndims; ++d) {
    uint64_t dim = load_be(&dim_bytes[4 * d], 4);
    shape[d] = static_cast<int64_t>(dim);
    if (dim != 0 && count > (uint64_t{1} << 62) / dim) overflow = true;
    else count *= dim;
  }
  GPUML_CHECK_KIND(ErrorKind::Io, !overflow, "{}: IDX dims {} overflow the element count", path, shape_str(shape));
  uint64_t payload = count * type->bytes;
  uint64_t header = 4 + 4 * static_cast<uint64_t>(ndims);

  // Check the size before allocating, so that a corrupt header cannot ask for terabytes.
  if (!src->compressed()) {
    uint64_t available = src->stored_size() - header;
    GPUML_CHECK_KIND(ErrorKind::Io, available >= payload,
                     "{}: truncated IDX data: dims {} of {} need {} bytes, the file holds {}", path,
                     shape_str(shape), type->name, payload, available);
    GPUML_CHECK_KIND(ErrorKind::Io, available == payload,
                     "{}: {} bytes of trailing garbage after the IDX data of dims {}", path, available - payload,
                     shape_str(shape));
  } else {
    // Deflate cannot expand data by more than about 1032:1.
    uint64_t bound = src->stored_size() * 1032 + 1024;
    GPUML_CHECK_KIND(ErrorKind::Io, payload <= bound,
                     "{}: IDX dims {} of {} need {} bytes, more than a {}-byte gzip file can hold", path,
                     shape_str(shape), type->name, payload, src->stored_size());
  }

  Tensor out = Tensor::empty(shape, type->dtype);
  if (type->code == 0x08) {
    read_exact(*src, out.raw_data(), payload, "IDX data");
  } else {
    std::vector<uint8_t> raw(payload);
    read_exact(*src, raw.data(), payload, "IDX data");
    decode_be(*type, raw.data(), out);
  }
  GPUML_CHECK_KIND(ErrorKind::Io, at_end(*src), "{}: trailing garbage after the IDX data of dims {}", path,
                   shape_str(shape));
  return out;
}

}  // namespace gpuml::data
