#include "core/json_read.h"

namespace gpuml {

namespace {

template <typename Json>
Json parse_bounded(std::string_view text, const std::string& where, ErrorKind kind, std::string_view hint) {
  // A callback makes nlohmann report each container with its depth; the throw leaves the parser
  // before the value grows any deeper (its destructor is iterative, so unwinding is safe).
  auto depth_guard = [&](int depth, typename Json::parse_event_t event, Json&) {
    using Event = typename Json::parse_event_t;
    if (event == Event::array_start || event == Event::object_start)
      check_json_depth(depth, where, kind);
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), depth_guard);
  } catch (const typename Json::exception& e) {
    GPUML_FAIL(kind, "{}: not valid JSON{}{}{}: {}", where, hint.empty() ? "" : " (", hint, hint.empty() ? "" : ")",
               text_excerpt(e.what(), 2 * kExcerptChars));
  }
}

// Compact JSON text of `value`, stopping once `out` holds more than `max_chars`.
template <typename Json>
void write_excerpt(const Json& value, size_t max_chars, int depth, std::string& out) {
  if (out.size() > max_chars) return;
  if (depth >= kJsonMaxDepth) {
    out += "...";
    return;
  }
  if (value.is_array() || value.is_object()) {
    const bool object = value.is_object();
    out += object ? '{' : '[';
    bool first = true;
    for (auto it = value.begin(); it != value.end() && out.size() <= max_chars; ++it) {
      if (!first) out += ',';
      first = false;
      if (object) {
        write_excerpt(Json(it.key().substr(0, max_chars)), max_chars, depth + 1, out);
        out += ':';
      }
      write_excerpt(it.value(), max_chars, depth + 1, out);
    }
    out += object ? '}' : ']';
    return;
  }
  if (value.is_string()) {  // cut long strings before escaping them
    const std::string& s = value.template get_ref<const std::string&>();
    out += Json(s.substr(0, max_chars + 1)).dump(-1, ' ', false, Json::error_handler_t::replace);
    return;
  }
  out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

template <typename Json>
std::string excerpt_of(const Json& value, size_t max_chars) {
  std::string out;
  write_excerpt(value, max_chars, 0, out);
  if (out.size() > max_chars) {
    out.resize(max_chars);
    out += "...";
  }
  return out;
}

}  // namespace

void check_json_depth(int depth, const std::string& where, ErrorKind kind) {
  GPUML_CHECK_KIND(kind, depth < kJsonMaxDepth,
                   "{}: JSON nested more than {} levels deep (refused: no gpuml file nests that deep)",
                   where, kJsonMaxDepth);
}

nlohmann::json parse_json(std::string_view text, const std::string& where, ErrorKind kind,
                          std::string_view hint) {
  return parse_bounded<nlohmann::json>(text, where, kind, hint);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where,
                                          ErrorKind kind) {
  return parse_bounded<nlohmann::ordered_json>(text, where, kind, {});
}

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  return excerpt_of(value, max_chars);
}

std::string json_excerpt(const nlohmann::ordered_json& value, size_t max_chars) {
  return excerpt_of(value, max_chars);
}

std::string text_excerpt(std::string_view text, size_t max_chars) {
  std::string out;
  size_t shown = 0;
  for (; shown < text.size() && out.size() < max_chars; ++shown) {
    unsigned char c = static_cast<unsigned char>(text[shown]);
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (shown < text.size()) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

}  // namespace gpuml
