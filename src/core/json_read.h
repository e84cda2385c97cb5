// Reading JSON that came from a user's file: nesting is bounded and errors quote a short prefix.
//
//   nlohmann::json spec = parse_json(text, "model file 'm.json'");      // throws gpuml::Error
//   GPUML_CHECK(spec.is_object(), "expected an object, got {}", json_excerpt(spec));
//
// Why: nlohmann's parser is iterative, but dump() and every reader that walks a value (layer
// specs nest through "Sequential") recurse, so a file of 100,000 nested arrays overflowed the
// stack in an error message. Parsing refuses anything nested deeper than kJsonMaxDepth, and
// error messages never dump a whole value (a 100 MB string would be quoted whole otherwise).
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuml {

// Containers (arrays and objects) nested at most this deep; gpuml's own files use fewer than 10.
inline constexpr int kJsonMaxDepth = 64;
// How much of a value or a piece of text an error message quotes.
inline constexpr size_t kExcerptChars = 80;

// Parses `text`; invalid JSON or nesting past kJsonMaxDepth throws an Error of `kind` that starts
// with `where` and quotes at most a short prefix of the offending text. `hint` follows "not valid
// JSON" in the message: "manifest.json: not valid JSON (truncated or damaged?): ...".
nlohmann::json parse_json(std::string_view text, const std::string& where,
                          ErrorKind kind = ErrorKind::Invalid, std::string_view hint = {});
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where,
                                          ErrorKind kind = ErrorKind::Invalid);

// For a parser callback of one's own (safetensors watches keys): call it on every array_start and
// object_start; it throws the same error as parse_json when that container lies too deep.
void check_json_depth(int depth, const std::string& where, ErrorKind kind);

// At most `max_chars` of the value's compact JSON text, with "..." when cut; never recurses
// deeper than kJsonMaxDepth, never throws on invalid UTF-8.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = kExcerptChars);
std::string json_excerpt(const nlohmann::ordered_json& value, size_t max_chars = kExcerptChars);

// At most `max_chars` of `text`, then "... (N bytes)" when cut; control bytes are shown as \xNN.
std::string text_excerpt(std::string_view text, size_t max_chars = kExcerptChars);

}  // namespace gpuml
