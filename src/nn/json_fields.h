// Strict reading of one JSON object (a layer spec, the model file): every field is checked for
// type and range, and finish() rejects fields nobody asked for, so a typo ("kernal_size") is an
// error instead of a silently ignored default. Messages start with `where` ("layer 3 (Conv2d)").
//
//   JsonFields f(spec, "layer 3 (Conv2d)");
//   int64_t k = f.required_int("kernel_size", /*min*/ 1);
//   int64_t pad = f.optional_int("padding", 0, /*min*/ 0);
//   f.finish();   // throws ErrorKind::Invalid on an unknown field, listing the known ones
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/shape.h"

namespace gpuml::nn {

class JsonFields {
 public:
  // `always_known` fields are accepted by finish() without being read here (e.g. "type").
  JsonFields(const nlohmann::json& object, std::string where,
             std::vector<std::string> always_known = {});

  bool has(const std::string& key) const;
  int64_t required_int(const std::string& key, int64_t min);
  int64_t optional_int(const std::string& key, int64_t fallback, int64_t min);
  bool optional_bool(const std::string& key, bool fallback);
  double optional_number(const std::string& key, double fallback, double min, double max);
  std::string optional_choice(const std::string& key, const std::string& fallback,
                              const std::vector<std::string>& choices);
  // A non-empty string without control characters, or `fallback` when absent.
  std::string optional_string(const std::string& key, const std::string& fallback);
  // An integer or a non-empty list of integers, each >= min (LayerNorm's normalized_shape).
  Shape required_int_list(const std::string& key, int64_t min);
  const nlohmann::json& required_array(const std::string& key);
  void finish() const;

  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& field(const std::string& key);  // marks it known; the object must hold it
  int64_t as_int(const std::string& key, const nlohmann::json& v, int64_t min) const;

  const nlohmann::json& object_;
  std::string where_;
  std::set<std::string> known_;
};

}  // namespace gpuml::nn
