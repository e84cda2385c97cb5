#include "interop/onnx_proto_util.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "backend/dispatch.h"
#include "core/error.h"
#include "core/json_read.h"

namespace gpuml::interop {
namespace {

namespace fs = std::filesystem;

// The values of TensorProto.DataType (onnx.proto).
constexpr int kFloat = 1, kUint8 = 2, kInt32 = 6, kInt64 = 7, kBool = 9, kFloat16 = 10, kDouble = 11,
              kBfloat16 = 16;

// An external data location must stay inside the model's directory: relative, no "..", and the
// resolved file (symlinks followed) still under the directory.
fs::path safe_external_path(const fs::path& dir, const std::string& location, const std::string& what) {
  GPUML_CHECK(!dir.empty(), "{}: external data '{}' is not allowed here", what, location);
  fs::path rel(location);
  GPUML_CHECK(!location.empty() && rel.is_relative() && location.find('\\') == std::string::npos,
              "{}: external data location '{}' must be a relative path inside the model's directory", what, location);
  for (const fs::path& part : rel)
    GPUML_CHECK(part != "..", "{}: external data location '{}' leaves the model's directory ('..')", what, location);
  std::error_code ec;
  fs::path base = fs::weakly_canonical(dir, ec);
  fs::path target = fs::weakly_canonical(dir / rel, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot resolve external data '{}': {}", what, location, ec.message());
  auto mismatch = std::mismatch(base.begin(), base.end(), target.begin(), target.end());
  GPUML_CHECK(mismatch.first == base.end(), "{}: external data '{}' resolves outside the model's directory ({})",
              what, location, target.string());
  return target;
}

std::string read_external(const onnx::TensorProto& proto, const TensorSource& source, const std::string& what,
                          uint64_t expected_bytes) {
  std::string location;
  uint64_t offset = 0, length = std::numeric_limits<uint64_t>::max();
  for (const auto& entry : proto.external_data()) {
    auto number = [&](const std::string& text) {
      GPUML_CHECK(!text.empty() && text.size() < 20 && text.find_first_not_of("0123456789") == std::string::npos,
                  "{}: external data {} '{}' is not a number", what, entry.key(), text);
      return std::stoull(text);
    };
    if (entry.key() == "location") location = entry.value();
    else if (entry.key() == "offset") offset = number(entry.value());
    else if (entry.key() == "length") length = number(entry.value());
  }
  fs::path file = safe_external_path(source.model_dir, location, what);
  std::error_code ec;
  uint64_t size = fs::file_size(file, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec && fs::is_regular_file(file), "{}: external data file {} is not readable",
                   what, file.string());
  if (length == std::numeric_limits<uint64_t>::max()) length = expected_bytes;
  GPUML_CHECK(length == expected_bytes, "{}: external data length {} does not match the {} bytes its dims need",
              what, length, expected_bytes);
  GPUML_CHECK(offset <= size && length <= size - offset,
              "{}: external data [{}, +{}) lies outside {} ({} bytes)", what, offset, length, file.string(), size);
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string bytes(static_cast<size_t>(length), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(length));
  GPUML_CHECK_KIND(ErrorKind::Io, in.gcount() == static_cast<std::streamsize>(length), "{}: short read of {}", what,
                   file.string());
  return bytes;
}

// Values stored in the typed repeated fields (float_data, int64_data, ...), as ONNX specifies
// per element type: f32 -> float_data, i64 -> int64_data, f64 -> double_data, and the small
// integer/bool/f16 types -> int32_data (f16/bf16 as their bit patterns).
std::string typed_field_bytes(const onnx::TensorProto& p, DType dtype, int64_t count, const std::string& what) {
  auto check_count = [&](int64_t have) {
    GPUML_CHECK(have == count, "{}: holds {} values, its dims need {}", what, have, count);
  };
  std::string out(static_cast<size_t>(count) * dtype_size(dtype), '\0');
  // An empty repeated field's data() is null, and memcpy from null is undefined even for 0 bytes.
  auto copy_from = [&](const void* values) {
    if (!out.empty()) std::memcpy(out.data(), values, out.size());
  };
  switch (dtype) {
    case DType::f32:
      check_count(p.float_data_size());
      copy_from(p.float_data().data());
      break;
    case DType::f64:
      check_count(p.double_data_size());
      copy_from(p.double_data().data());
      break;
    case DType::i64:
      check_count(p.int64_data_size());
      copy_from(p.int64_data().data());
      break;
    default: {
      check_count(p.int32_data_size());
      for (int64_t i = 0; i < count; ++i) {
        int32_t v = p.int32_data(static_cast<int>(i));
        size_t item = dtype_size(dtype);
        if (dtype == DType::boolean) v = v != 0;
        std::memcpy(out.data() + i * item, &v, item);  // little-endian: the low bytes
      }
    }
  }
  return out;
}

}  // namespace

int onnx_type_of(DType dtype) {
  switch (dtype) {
    case DType::f32: return kFloat;
    case DType::f64: return kDouble;
    case DType::bf16: return kBfloat16;
    case DType::f16: return kFloat16;
    case DType::i32: return kInt32;
    case DType::i64: return kInt64;
    case DType::u8: return kUint8;
    case DType::boolean: return kBool;
  }
  return 0;
}

DType dtype_from_onnx(int onnx_type, const std::string& what) {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::boolean})
    if (onnx_type_of(d) == onnx_type) return d;
  std::string name = onnx::TensorProto_DataType_IsValid(onnx_type)
                         ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(onnx_type))
                         : std::to_string(onnx_type);
  GPUML_FAIL(ErrorKind::Unsupported, "{}: element type {} is not supported by gpuml", what, name);
}

onnx::TensorProto tensor_to_proto(const std::string& name, const Tensor& tensor) {
  Tensor host = contiguous(tensor, backend_registry().reference());
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(onnx_type_of(host.dtype()));
  for (int64_t d : host.shape()) p.add_dims(d);
  p.set_raw_data(host.raw_data(), host.nbytes());
  return p;
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const TensorSource& source, const std::string& what) {
  DType dtype = dtype_from_onnx(proto.data_type(), what);
  GPUML_CHECK(!proto.has_segment(), "{}: segmented tensors are not supported", what);
  Shape shape;
  uint64_t count = 1;
  for (int64_t d : proto.dims()) {
    GPUML_CHECK(d >= 0, "{}: negative dimension {}", what, d);
    GPUML_CHECK(d == 0 || count <= source.max_bytes / static_cast<uint64_t>(d),
                "{}: dims {} are too large (over {} bytes)", what, fmt::join(proto.dims(), "x"), source.max_bytes);
    count *= static_cast<uint64_t>(d);
    shape.push_back(d);
  }
  uint64_t bytes = count * dtype_size(dtype);
  GPUML_CHECK(bytes <= source.max_bytes, "{}: {} bytes exceed the limit of {}", what, bytes, source.max_bytes);
  std::string data;
  if (proto.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    data = read_external(proto, source, what, bytes);
  } else if (proto.has_raw_data()) {
    GPUML_CHECK(proto.raw_data().size() == bytes, "{}: raw_data holds {} bytes, its dims {} need {}", what,
                proto.raw_data().size(), shape_str(shape), bytes);
    data = proto.raw_data();
  } else {
    data = typed_field_bytes(proto, dtype, static_cast<int64_t>(count), what);
  }
  Tensor t = Tensor::empty(shape, dtype);
  if (bytes) std::memcpy(t.raw_data(), data.data(), bytes);
  if (dtype == DType::boolean) {  // any non-zero byte is true; gpuml's bool is 0/1
    auto* b = static_cast<uint8_t*>(t.raw_data());
    for (uint64_t i = 0; i < count; ++i) b[i] = b[i] != 0;
  }
  return t;
}

void set_int(onnx::NodeProto& node, const std::string& name, int64_t value) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto_AttributeType_INT);
  a->set_i(value);
}

void set_float(onnx::NodeProto& node, const std::string& name, float value) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
  a->set_f(value);
}

void set_ints(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto_AttributeType_INTS);
  for (int64_t v : values) a->add_ints(v);
}

const onnx::AttributeProto* find_attr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

namespace {
const onnx::AttributeProto* typed_attr(const onnx::NodeProto& node, const std::string& name,
                                       onnx::AttributeProto_AttributeType type) {
  const onnx::AttributeProto* a = find_attr(node, name);
  if (!a) return nullptr;
  GPUML_CHECK(a->type() == type, "{}: attribute '{}' has type {}, expected {}", node_label(node), name,
              onnx::AttributeProto_AttributeType_Name(a->type()), onnx::AttributeProto_AttributeType_Name(type));
  return a;
}
}  // namespace

int64_t attr_int(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  const auto* a = typed_attr(node, name, onnx::AttributeProto_AttributeType_INT);
  return a ? a->i() : fallback;
}

float attr_float(const onnx::NodeProto& node, const std::string& name, float fallback) {
  const auto* a = typed_attr(node, name, onnx::AttributeProto_AttributeType_FLOAT);
  return a ? a->f() : fallback;
}

std::vector<int64_t> attr_ints(const onnx::NodeProto& node, const std::string& name,
                               const std::vector<int64_t>& fallback) {
  const auto* a = typed_attr(node, name, onnx::AttributeProto_AttributeType_INTS);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

std::string attr_string(const onnx::NodeProto& node, const std::string& name, const std::string& fallback) {
  const auto* a = typed_attr(node, name, onnx::AttributeProto_AttributeType_STRING);
  return a ? a->s() : fallback;
}

std::string node_label(const onnx::NodeProto& node) {
  return fmt::format("{} '{}'", text_excerpt(node.op_type()),
                     text_excerpt(node.name().empty() ? (node.output_size() ? node.output(0) : "?") : node.name()));
}

}  // namespace gpuml::interop
