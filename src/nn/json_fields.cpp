#include "nn/json_fields.h"

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/spelling.h"
#include "core/json_read.h"

namespace gpuml::nn {

JsonFields::JsonFields(const nlohmann::json& object, std::string where,
                       std::vector<std::string> always_known)
    : object_(object), where_(std::move(where)), known_(always_known.begin(), always_known.end()) {
  GPUML_CHECK(object_.is_object(), "{}: expected a JSON object, got {}", where_, json_excerpt(object_));
}

bool JsonFields::has(const std::string& key) const {
  return object_.contains(key);
}

const nlohmann::json& JsonFields::field(const std::string& key) {
  known_.insert(key);
  if (!object_.contains(key)) {
    // A field given under a misspelt name is missing under the right one: name both.
    std::vector<std::string> unknown;
    for (const auto& [name, value] : object_.items())
      if (known_.count(name) == 0) unknown.push_back(name);
    const std::string near = nearest_name(key, unknown);
    GPUML_FAIL(ErrorKind::Invalid, "{}: missing field '{}'{}", where_, key,
               near.empty() ? std::string()
                            : fmt::format(" (unknown field '{}' given: did you mean '{}'?)", near, key));
  }
  return object_.at(key);
}

int64_t JsonFields::as_int(const std::string& key, const nlohmann::json& v, int64_t min) const {
  GPUML_CHECK(v.is_number_integer(), "{}: field '{}' must be an integer, got {}", where_, key,
              json_excerpt(v));
  if (v.is_number_unsigned())
    GPUML_CHECK(v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX),
                "{}: field '{}' is too large: {}", where_, key, json_excerpt(v));
  int64_t value = v.get<int64_t>();
  GPUML_CHECK(value >= min, "{}: field '{}' must be >= {}, got {}", where_, key, min, value);
  return value;
}

int64_t JsonFields::required_int(const std::string& key, int64_t min) {
  return as_int(key, field(key), min);
}

int64_t JsonFields::optional_int(const std::string& key, int64_t fallback, int64_t min) {
  known_.insert(key);
  return has(key) ? as_int(key, object_.at(key), min) : fallback;
}

bool JsonFields::optional_bool(const std::string& key, bool fallback) {
  known_.insert(key);
  if (!has(key)) return fallback;
  const nlohmann::json& v = object_.at(key);
  GPUML_CHECK(v.is_boolean(), "{}: field '{}' must be true or false, got {}", where_, key,
              json_excerpt(v));
  return v.get<bool>();
}

double JsonFields::optional_number(const std::string& key, double fallback, double min,
                                   double max) {
  known_.insert(key);
  if (!has(key)) return fallback;
  const nlohmann::json& v = object_.at(key);
  GPUML_CHECK(v.is_number(), "{}: field '{}' must be a number, got {}", where_, key, json_excerpt(v));
  double value = v.get<double>();
  GPUML_CHECK(value >= min && value <= max, "{}: field '{}' must be in [{}, {}], got {}", where_,
              key, min, max, value);
  return value;
}

std::string JsonFields::optional_choice(const std::string& key, const std::string& fallback,
                                        const std::vector<std::string>& choices) {
  known_.insert(key);
  if (!has(key)) return fallback;
  const nlohmann::json& v = object_.at(key);
  GPUML_CHECK(v.is_string(), "{}: field '{}' must be a string, got {}", where_, key, json_excerpt(v));
  std::string value = v.get<std::string>();
  GPUML_CHECK(std::find(choices.begin(), choices.end(), value) != choices.end(),
              "{}: field '{}' must be one of {}, got \"{}\"", where_, key, fmt::join(choices, ", "),
              text_excerpt(value));
  return value;
}

std::string JsonFields::optional_string(const std::string& key, const std::string& fallback) {
  known_.insert(key);
  if (!has(key)) return fallback;
  const nlohmann::json& v = object_.at(key);
  GPUML_CHECK(v.is_string() && !v.get<std::string>().empty(), "{}: field '{}' must be a non-empty string, got {}",
              where_, key, json_excerpt(v));
  std::string value = v.get<std::string>();
  for (char c : value)
    GPUML_CHECK(static_cast<unsigned char>(c) >= 0x20, "{}: field '{}' holds a control character: {}", where_, key,
                json_excerpt(v));
  return value;
}

Shape JsonFields::required_int_list(const std::string& key, int64_t min) {
  const nlohmann::json& v = field(key);
  if (!v.is_array()) return {as_int(key, v, min)};
  GPUML_CHECK(!v.empty(), "{}: field '{}' must not be empty", where_, key);
  Shape out;
  for (const nlohmann::json& e : v) out.push_back(as_int(key, e, min));
  return out;
}

const nlohmann::json& JsonFields::required_array(const std::string& key) {
  const nlohmann::json& v = field(key);
  GPUML_CHECK(v.is_array(), "{}: field '{}' must be a list, got {}", where_, key, json_excerpt(v));
  return v;
}

void JsonFields::finish() const {
  for (const auto& [key, value] : object_.items())
    GPUML_CHECK(known_.count(key) != 0, "{}: unknown field '{}'{} (known fields: {})", where_, text_excerpt(key),
                did_you_mean(key, std::vector<std::string>(known_.begin(), known_.end())), fmt::join(known_, ", "));
}

}  // namespace gpuml::nn
