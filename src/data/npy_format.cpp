#include "data/npy_format.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <vector>

#include "data/tensor_copy.h"

namespace gpuml::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
// NumPy itself refuses headers past 10000 bytes unless told otherwise; a little slack here.
constexpr uint64_t kMaxHeaderBytes = 1 << 16;

// A cursor over the header text that throws Io errors naming the file and the offset.
class DictParser {
 public:
  DictParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  [[noreturn]] void fail(const std::string& what) const {
    std::string_view shown = text_.substr(0, 200);
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.remove_suffix(1);
    GPUML_FAIL(ErrorKind::Io, "{}: malformed NPY header at byte {}: {} (header: {})", name_, pos_, what, shown);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(fmt::format("expected '{}'", c));
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) fail("expected a string");
    char quote = text_[pos_++];
    size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' || text_[pos_] == '\n') fail("escape or newline inside a string");
      ++pos_;
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }
  bool bool_literal() {
    skip_space();
    for (auto [word, value] : {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail("expected True or False");
  }
  int64_t int_literal() {
    skip_space();
    size_t start = pos_;
    int64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
      v = v * 10 + (text_[pos_++] - '0');
    }
    if (pos_ == start) fail("expected a non-negative integer");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 era files write 3L
    return v;
  }
  Shape tuple_literal() {
    expect('(');
    Shape shape;
    if (accept(')')) return shape;
    while (true) {
      shape.push_back(int_literal());
      bool comma = accept(',');
      if (accept(')')) {
        if (shape.size() == 1 && !comma) fail("a one-element tuple needs a trailing comma");
        return shape;
      }
      if (!comma) fail("expected ',' or ')' in the shape");
    }
  }
  void expect_end() {
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the dict");
  }

 private:
  std::string_view text_;
  const std::string& name_;
  size_t pos_ = 0;
};

uint64_t load_uint(const uint8_t* p, size_t bytes, bool big_endian) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(big_endian ? p[bytes - 1 - i] : p[i]) << (8 * i);
  return v;
}

int64_t sign_extend(uint64_t v, size_t bytes) {
  if (bytes == 8) return static_cast<int64_t>(v);
  uint64_t sign = uint64_t{1} << (8 * bytes - 1);
  return static_cast<int64_t>((v ^ sign) - sign);
}

// True when the stored bytes are already the decoded tensor's bytes.
bool payload_is_native(const NpyHeader& h) {
  if (h.kind == 'u' && h.item_bytes > 1) return false;
  if (h.kind == 'i' && h.item_bytes < 4) return false;
  if (h.kind == 'b') return false;  // normalised to 0/1 below
  return h.item_bytes == 1 || (h.byte_order == '<' && std::endian::native == std::endian::little);
}

void decode_elements(const NpyHeader& h, const uint8_t* src, Tensor& out, const std::string& name) {
  int64_t n = out.numel();
  bool big = h.byte_order == '>';
  size_t w = h.item_bytes;
  switch (out.dtype()) {
    case DType::f16: {
      f16* dst = out.data<f16>();
      for (int64_t i = 0; i < n; ++i) dst[i].bits = static_cast<uint16_t>(load_uint(src + w * i, 2, big));
      break;
    }
    case DType::f32: {
      float* dst = out.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(load_uint(src + w * i, 4, big));
        std::memcpy(&dst[i], &bits, 4);
      }
      break;
    }
    case DType::f64: {
      double* dst = out.data<double>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t bits = load_uint(src + w * i, 8, big);
        std::memcpy(&dst[i], &bits, 8);
      }
      break;
    }
    case DType::i32: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = load_uint(src + w * i, w, big);
        dst[i] = static_cast<int32_t>(h.kind == 'i' ? sign_extend(v, w) : static_cast<int64_t>(v));
      }
      break;
    }
    case DType::i64: {
      int64_t* dst = out.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = load_uint(src + w * i, w, big);
        GPUML_CHECK_KIND(ErrorKind::Io, h.kind == 'i' || v <= uint64_t{std::numeric_limits<int64_t>::max()},
                         "{}: element {} of the uint64 array is {}, which does not fit gpuml's i64", name, i, v);
        dst[i] = h.kind == 'i' ? sign_extend(v, w) : static_cast<int64_t>(v);
      }
      break;
    }
    case DType::u8: std::memcpy(out.raw_data(), src, static_cast<size_t>(n)); break;
    case DType::boolean: {
      bool* dst = out.data<bool>();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
      break;
    }
    default: GPUML_FAIL(ErrorKind::Internal, "{}: no NPY decoder for {}", name, out.dtype());
  }
}

}  // namespace

NpyHeader parse_npy_header_dict(std::string_view text, const std::string& name) {
  DictParser p(text, name);
  NpyHeader h;
  bool seen_descr = false, seen_fortran = false, seen_shape = false;
  p.expect('{');
  while (!p.accept('}')) {
    std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      if (seen_descr) p.fail("'descr' repeated");
      seen_descr = true;
      if (p.peek('[')) {
        GPUML_FAIL(ErrorKind::Unsupported, "{}: structured NPY dtypes (a list descr) are not supported", name);
      }
      h.descr = p.string_literal();
    } else if (key == "fortran_order") {
      if (seen_fortran) p.fail("'fortran_order' repeated");
      seen_fortran = true;
      h.fortran_order = p.bool_literal();
    } else if (key == "shape") {
      if (seen_shape) p.fail("'shape' repeated");
      seen_shape = true;
      h.shape = p.tuple_literal();
    } else {
      p.fail(fmt::format("unexpected key '{}'", key));
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  p.expect_end();
  if (!seen_descr || !seen_fortran || !seen_shape) p.fail("the dict needs 'descr', 'fortran_order' and 'shape'");

  const std::string& d = h.descr;
  if (d.find('O') != std::string::npos) {
    GPUML_FAIL(ErrorKind::Unsupported,
               "{}: NPY object arrays (descr '{}') hold pickled Python objects; gpuml refuses them and never "
               "unpickles", name, d);
  }
  GPUML_CHECK_KIND(ErrorKind::Io, d.size() >= 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|'),
                   "{}: NPY descr '{}' has no byte order ('<', '>' or '|') before its type code", name, d);
  h.byte_order = d[0];
  h.kind = d[1];
  int64_t bytes = 0;
  for (size_t i = 2; i < d.size(); ++i) {
    GPUML_CHECK_KIND(ErrorKind::Io, d[i] >= '0' && d[i] <= '9' && bytes < 1000, "{}: bad NPY descr '{}'", name, d);
    bytes = bytes * 10 + (d[i] - '0');
  }
  h.item_bytes = static_cast<size_t>(bytes);
  bool known = (h.kind == 'f' && (bytes == 2 || bytes == 4 || bytes == 8)) ||
               ((h.kind == 'i' || h.kind == 'u') && (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8)) ||
               (h.kind == 'b' && bytes == 1);
  GPUML_CHECK_KIND(ErrorKind::Unsupported, known,
                   "{}: NPY dtype '{}' is not supported (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)", name, d);
  GPUML_CHECK_KIND(ErrorKind::Io, bytes == 1 || h.byte_order != '|',
                   "{}: NPY descr '{}' has no byte order for a multi-byte type", name, d);
  return h;
}

DType npy_decoded_dtype(const NpyHeader& h) {
  switch (h.kind) {
    case 'f': return h.item_bytes == 2 ? DType::f16 : h.item_bytes == 4 ? DType::f32 : DType::f64;
    case 'i': return h.item_bytes == 8 ? DType::i64 : DType::i32;
    case 'u': return h.item_bytes == 1 ? DType::u8 : h.item_bytes == 2 ? DType::i32 : DType::i64;
    case 'b': return DType::boolean;
    default: GPUML_FAIL(ErrorKind::Internal, "NPY kind '{}' has no dtype", h.kind);
  }
}

NpyPreamble read_npy_preamble(ByteSource& src, uint64_t total_size) {
  const std::string& name = src.name();
  uint8_t head[8];
  read_exact(src, head, 8, "NPY preamble");
  GPUML_CHECK_KIND(ErrorKind::Io, std::memcmp(head, kMagic, 6) == 0, "{}: not an NPY file (bad magic)", name);
  NpyPreamble pre;
  pre.major_version = head[6];
  GPUML_CHECK_KIND(ErrorKind::Io, (head[6] >= 1 && head[6] <= 3) && head[7] == 0,
                   "{}: unsupported NPY format version {}.{} (expected 1.0, 2.0 or 3.0)", name, head[6], head[7]);
  size_t len_bytes = head[6] == 1 ? 2 : 4;
  uint8_t len_field[4];
  read_exact(src, len_field, len_bytes, "NPY header length");
  uint64_t dict_len = load_uint(len_field, len_bytes, false);
  pre.header_bytes = 8 + len_bytes + dict_len;
  GPUML_CHECK_KIND(ErrorKind::Io, dict_len <= kMaxHeaderBytes && pre.header_bytes <= total_size,
                   "{}: NPY header length {} is larger than the file ({} bytes) or the {} byte limit", name,
                   dict_len, total_size, kMaxHeaderBytes);
  std::string dict(dict_len, '\0');
  read_exact(src, dict.data(), dict_len, "NPY header");
  pre.header = parse_npy_header_dict(dict, name);

  uint64_t count = 1;
  for (int64_t d : pre.header.shape) {
    GPUML_CHECK_KIND(ErrorKind::Io, d == 0 || count <= (uint64_t{1} << 56) / static_cast<uint64_t>(d),
                     "{}: NPY shape {} overflows the element count", name, shape_str(pre.header.shape));
    count *= static_cast<uint64_t>(d);
  }
  pre.payload_bytes = count * pre.header.item_bytes;
  uint64_t available = total_size - pre.header_bytes;
  GPUML_CHECK_KIND(ErrorKind::Io, available >= pre.payload_bytes,
                   "{}: truncated NPY data: shape {} of '{}' needs {} bytes, the file holds {}", name,
                   shape_str(pre.header.shape), pre.header.descr, pre.payload_bytes, available);
  GPUML_CHECK_KIND(ErrorKind::Io, available == pre.payload_bytes,
                   "{}: {} bytes of trailing data after the NPY array of shape {}", name,
                   available - pre.payload_bytes, shape_str(pre.header.shape));
  return pre;
}

Tensor read_npy_payload(ByteSource& src, const NpyPreamble& pre) {
  const NpyHeader& h = pre.header;
  // Fortran order stores the transpose's C order: read it as reversed shape, then permute back.
  Shape stored_shape = h.shape;
  if (h.fortran_order) std::reverse(stored_shape.begin(), stored_shape.end());
  Tensor stored = Tensor::empty(stored_shape, npy_decoded_dtype(h));
  if (payload_is_native(h)) {
    read_exact(src, stored.raw_data(), pre.payload_bytes, "NPY data");
  } else {
    std::vector<uint8_t> raw(pre.payload_bytes);
    read_exact(src, raw.data(), raw.size(), "NPY data");
    decode_elements(h, raw.data(), stored, src.name());
  }
  if (!h.fortran_order || stored.ndim() < 2) return stored;
  std::vector<int64_t> axes(stored.ndim());
  for (int i = 0; i < stored.ndim(); ++i) axes[i] = stored.ndim() - 1 - i;
  return contiguous_copy(stored.permute(axes));
}

std::string npy_v1_preamble(DType dtype, const Shape& shape) {
  const char* descr = nullptr;
  switch (dtype) {
    case DType::f32: descr = "<f4"; break;
    case DType::f64: descr = "<f8"; break;
    case DType::f16: descr = "<f2"; break;
    case DType::i32: descr = "<i4"; break;
    case DType::i64: descr = "<i8"; break;
    case DType::u8: descr = "|u1"; break;
    case DType::boolean: descr = "|b1"; break;
    case DType::bf16:
      GPUML_FAIL(ErrorKind::Unsupported, "NPY has no bfloat16 type; cast the tensor to f32 before saving");
  }
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += fmt::format("{}{}", i ? ", " : "", shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  // Pad with spaces so that the data starts on a 64-byte boundary, ending in '\n' like NumPy.
  size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  GPUML_CHECK_KIND(ErrorKind::Unsupported, dict.size() <= 0xFFFF, "NPY v1 header too long for shape {}",
                   shape_str(shape));
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict;
}

}  // namespace gpuml::data
