// Element types and the one dispatch from a runtime DType to a C++ type.
//
//   dispatch_dtype(t.dtype(), [&]<typename T>(T) { fill<T>(t); });
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/hd.h"

namespace gpuml {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, boolean };
inline constexpr int kNumDTypes = 8;
inline constexpr DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                       DType::i32, DType::i64, DType::u8,   DType::boolean};

// bfloat16: the top 16 bits of an IEEE float, rounded to nearest even.
struct bf16 {
  uint16_t bits = 0;
  GPUML_HD static bf16 from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a quiet NaN
      r.bits = static_cast<uint16_t>((u >> 16) | 0x40u);
      return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = static_cast<uint16_t>(u >> 16);
    return r;
  }
  GPUML_HD float to_float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE binary16, converted in software so that the header needs no compiler extension.
struct f16 {
  uint16_t bits = 0;
  static f16 from_float(float f);
  float to_float() const;
};

template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<bf16> { static constexpr DType value = DType::bf16; };
template <> struct DTypeOf<f16> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::boolean; };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
DType dtype_from_name(std::string_view name);  // throws on an unknown name
inline bool is_floating(DType d) {
  return d == DType::f32 || d == DType::f64 || d == DType::bf16 || d == DType::f16;
}
inline bool is_integral(DType d) { return !is_floating(d) && d != DType::boolean; }
// The type two operands meet in for arithmetic (NumPy-like, floats win, wider wins).
DType promote_types(DType a, DType b);

// Conversions through double, which holds every value of every dtype here except
// the extremes of i64 exactly enough for the reference backend.
template <typename T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return v.to_float();
  else return static_cast<double>(v);
}
template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return T::from_float(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

// Calls fn(T{}) with the C++ type of dtype. The lambda takes a tag argument.
template <typename Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::bf16: return fn(bf16{});
    case DType::f16: return fn(f16{});
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    case DType::u8: return fn(uint8_t{});
    case DType::boolean: return fn(bool{});
  }
  GPUML_FAIL(ErrorKind::Internal, "bad dtype {}", static_cast<int>(dtype));
}

}  // namespace gpuml

template <>
struct fmt::formatter<gpuml::DType> : fmt::formatter<std::string_view> {
  auto format(gpuml::DType d, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(gpuml::dtype_name(d), ctx);
  }
};
