#include "data/csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/json_read.h"
#include "data/csv_records.h"

namespace gpuml::data {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The whole trimmed field as a double (NaN and inf included), or nullopt.
std::optional<double> parse_number(std::string_view field) {
  std::string_view s = trim(field);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_integer(std::string_view field) {
  std::string_view s = trim(field);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "{}: cannot open the CSV file", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  GPUML_CHECK_KIND(ErrorKind::Io, !in.bad(), "{}: read error", path);
  return buffer.str();
}

// Resolves the label column against the header (if any) and the column count.
int64_t resolve_label_column(const CsvOptions& opt, const std::vector<std::string>* header, int64_t columns,
                             const std::string& path) {
  if (!opt.label_name.empty()) {
    GPUML_CHECK_KIND(ErrorKind::Io, header != nullptr,
                     "{}: the label column is given by name ('{}') but the file has no header row", path,
                     opt.label_name);
    for (size_t i = 0; i < header->size(); ++i)
      if (trim((*header)[i]) == opt.label_name) return static_cast<int64_t>(i);
    GPUML_FAIL(ErrorKind::Io, "{}: no column named '{}' (columns: {})", path, opt.label_name, text_excerpt(fmt::format("{}", fmt::join(*header, ", ")), 4 * kExcerptChars));
  }
  int64_t index = opt.label_index < 0 ? opt.label_index + columns : opt.label_index;
  GPUML_CHECK_KIND(ErrorKind::Io, index >= 0 && index < columns, "{}: label column {} is out of range for {} columns",
                   path, opt.label_index, columns);
  return index;
}

// auto_detect: a header when a field of the first row that must be numeric is not.
bool looks_like_header(const CsvRecord& first, const CsvOptions& opt) {
  if (!opt.label_name.empty()) return true;
  int64_t columns = static_cast<int64_t>(first.fields.size());
  int64_t label = -1;
  if (opt.has_label) label = opt.label_index < 0 ? opt.label_index + columns : opt.label_index;
  for (int64_t c = 0; c < columns; ++c) {
    const std::string& f = first.fields[c];
    if (trim(f).empty()) continue;
    bool numeric = c == label ? (opt.map_string_labels || opt.detect_string_labels || parse_integer(f).has_value())
                              : parse_number(f).has_value();
    if (!numeric) return true;
  }
  return false;
}

CsvLayout layout_of(const CsvRecord& first, const CsvOptions& opt, const std::string& path) {
  CsvLayout l;
  l.had_header = opt.header == CsvHeader::present || (opt.header == CsvHeader::auto_detect && looks_like_header(first, opt));
  l.columns = static_cast<int64_t>(first.fields.size());
  const std::vector<std::string>* header = l.had_header ? &first.fields : nullptr;
  l.label_column = opt.has_label ? resolve_label_column(opt, header, l.columns, path) : -1;
  l.features = l.columns - (opt.has_label ? 1 : 0);
  for (int64_t c = 0; c < l.columns; ++c) {
    std::string name = header ? std::string(trim((*header)[c])) : fmt::format("column{}", c + 1);
    if (c == l.label_column) l.label_name = name;
    else l.feature_names.push_back(name);
  }
  return l;
}

// Why a label is not an id, and what to do: a number that is not an integer is a feature (the
// label is in another column); a word is a class name, which the whole-file reader maps to ids.
std::string label_hint(std::string_view field, bool streaming) {
  if (parse_number(field).has_value())
    return "; is the label in another column? --csv-label NAME names it (default: the last column)";
  if (streaming)
    return "; `gpuml data pack` streams the file and needs integer labels: train from the .csv directly "
           "(gpuml train --data FILE.csv maps class names to ids), or replace the names by ids 0..C-1";
  return "; string labels are mapped to ids when CsvOptions::map_string_labels or detect_string_labels is set";
}

// Where one parsed record goes: its features, and per feature whether it is missing (to be
// filled); per-column sums and counts of the values present (for FillPolicy::mean); its label.
struct RowSink {
  float* x;                         // (features,)
  uint8_t* missing;                 // (features,)
  double* column_sum = nullptr;     // (features,) or null
  int64_t* column_count = nullptr;  // (features,) or null
  std::vector<std::string>* raw_labels = nullptr;  // map_string_labels
  std::vector<int64_t>* int_labels = nullptr;
};

void parse_record(const CsvRecord& rec, const CsvLayout& l, const CsvOptions& opt, const std::string& path,
                  const RowSink& out) {
  GPUML_CHECK_KIND(ErrorKind::Io, static_cast<int64_t>(rec.fields.size()) == l.columns,
                   "{}:{}: {} fields, expected {} like {}", path, rec.line, rec.fields.size(), l.columns,
                   l.had_header ? "the header" : "the first row");
  int64_t f = 0;
  for (int64_t c = 0; c < l.columns; ++c) {
    const std::string& field = rec.fields[c];
    if (c == l.label_column) {
      if (opt.map_string_labels || (opt.detect_string_labels && out.raw_labels)) {
        std::string_view label = rec.quoted[c] ? std::string_view(field) : trim(field);
        GPUML_CHECK_KIND(ErrorKind::Io, !label.empty(), "{}:{}:{}: missing label", path, rec.line, c + 1);
        out.raw_labels->emplace_back(label);
      } else {
        std::optional<int64_t> id = parse_integer(field);
        GPUML_CHECK_KIND(ErrorKind::Io, id.has_value(),
                         "{}:{}:{}: label '{}' is not an integer class id (column '{}'){}", path, rec.line, c + 1, text_excerpt(field), l.label_name, label_hint(field, out.raw_labels == nullptr));
        out.int_labels->push_back(*id);
      }
      continue;
    }
    std::optional<double> v = parse_number(field);
    bool ok = v.has_value() && std::isfinite(*v);
    out.missing[f] = !ok;
    if (!ok) {
      GPUML_CHECK_KIND(ErrorKind::Io, opt.fill != FillPolicy::none,
                       "{}:{}:{}: {} (column '{}'; --csv-fill mean or --csv-fill NUMBER fills missing values)",
                       path, rec.line, c + 1,
                       trim(field).empty() ? std::string("missing value")
                       : v.has_value()     ? fmt::format("value '{}' is not finite", text_excerpt(field))
                                           : fmt::format("value '{}' is not a number", text_excerpt(field)),
                       text_excerpt(l.feature_names[f]));
    } else {
      out.x[f] = static_cast<float>(*v);
      if (out.column_sum) {
        out.column_sum[f] += *v;
        ++out.column_count[f];
      }
    }
    ++f;
  }
}

// One past the last record end in `text` (a newline outside quotes); 0 when there is none.
size_t last_record_end(std::string_view text) {
  bool quoted = false;
  size_t end = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"') quoted = !quoted;  // "" toggles twice: still right
    else if (text[i] == '\n' && !quoted) end = i + 1;
  }
  return end;
}

}  // namespace

CsvData read_csv(const std::string& path, const CsvOptions& opt) {
  std::vector<CsvRecord> records = split_csv_records(read_text(path), opt.delimiter, path);
  GPUML_CHECK_KIND(ErrorKind::Io, !records.empty(), "{}: the CSV file is empty", path);

  CsvData out;
  const CsvLayout l = layout_of(records[0], opt, path);
  out.had_header = l.had_header;
  out.feature_names = l.feature_names;
  out.label_name = l.label_name;
  const size_t first_row = l.had_header ? 1 : 0;
  const int64_t rows = static_cast<int64_t>(records.size() - first_row);
  GPUML_CHECK_KIND(ErrorKind::Io, rows > 0, "{}: the CSV file has a header but no data rows", path);
  const int64_t features = l.features;

  out.features = Tensor::empty({rows, features}, DType::f32);
  float* x = out.features.data<float>();  // (rows, features)
  std::vector<uint8_t> missing(static_cast<size_t>(rows * features), 0);
  std::vector<double> column_sum(features, 0.0);
  std::vector<int64_t> column_count(features, 0);
  std::vector<std::string> raw_labels;
  std::vector<int64_t> int_labels;
  for (int64_t r = 0; r < rows; ++r)
    parse_record(records[first_row + r], l, opt, path,
                 {x + r * features, missing.data() + r * features, column_sum.data(), column_count.data(), &raw_labels,
                  &int_labels});

  if (opt.fill != FillPolicy::none) {
    for (int64_t f = 0; f < features; ++f) {
      double fill = opt.fill_value;
      if (opt.fill == FillPolicy::mean) {
        GPUML_CHECK_KIND(ErrorKind::Io, column_count[f] > 0,
                         "{}: column '{}' has no numeric value to take the mean of", path, text_excerpt(out.feature_names[f]));
        fill = column_sum[f] / static_cast<double>(column_count[f]);
      }
      for (int64_t r = 0; r < rows; ++r)
        if (missing[r * features + f]) x[r * features + f] = static_cast<float>(fill);
    }
  }

  bool map_strings = opt.map_string_labels;
  if (opt.has_label && opt.detect_string_labels && !opt.map_string_labels) {
    // Integers stay ids; words become classes; a fractional number means the wrong column.
    bool all_integers = opt.label_values != CsvOptions::Values::all, all_numbers = true;
    for (int64_t r = 0; r < rows && all_integers; ++r) all_integers = parse_integer(raw_labels[r]).has_value();
    for (int64_t r = 0; r < rows && all_numbers && !all_integers; ++r) all_numbers = parse_number(raw_labels[r]).has_value();
    const bool values = opt.label_values == CsvOptions::Values::all ||
                        (opt.label_values == CsvOptions::Values::fractional && !all_integers && all_numbers);
    if (values) {
      for (int64_t r = 0; r < rows; ++r)
        GPUML_CHECK_KIND(ErrorKind::Io, parse_number(raw_labels[r]).has_value(),
                         "{}:{}:{}: label '{}' is not a number (column '{}'), and regression targets must be", path,
                         records[first_row + r].line, l.label_column + 1, text_excerpt(raw_labels[r]), l.label_name);
      out.labels = Tensor::empty({rows}, DType::f32);
      for (int64_t r = 0; r < rows; ++r) out.labels.data<float>()[r] = static_cast<float>(*parse_number(raw_labels[r]));
      return out;
    }
    if (all_integers) {
      for (const std::string& label : raw_labels) int_labels.push_back(*parse_integer(label));
    } else {
      for (int64_t r = 0; r < rows; ++r)
        GPUML_CHECK_KIND(ErrorKind::Io, parse_integer(raw_labels[r]).has_value() || !parse_number(raw_labels[r]),
                         "{}:{}:{}: label '{}' is not an integer class id (column '{}'){}", path,
                         records[first_row + r].line, l.label_column + 1, raw_labels[r], l.label_name,
                         label_hint(raw_labels[r], false));
      map_strings = true;
    }
  }
  if (opt.has_label) {
    out.labels = Tensor::empty({rows}, DType::i64);
    int64_t* y = out.labels.data<int64_t>();
    if (map_strings) {
      out.label_classes = raw_labels;
      std::sort(out.label_classes.begin(), out.label_classes.end());
      out.label_classes.erase(std::unique(out.label_classes.begin(), out.label_classes.end()), out.label_classes.end());
      for (int64_t r = 0; r < rows; ++r)
        y[r] = std::lower_bound(out.label_classes.begin(), out.label_classes.end(), raw_labels[r]) -
               out.label_classes.begin();
    } else {
      std::copy(int_labels.begin(), int_labels.end(), y);
    }
  }
  return out;
}

void stream_csv(const std::string& path, const CsvOptions& opt, size_t block_bytes,
                const std::function<void(const CsvLayout&)>& on_layout,
                const std::function<void(const float*, const int64_t*, int64_t)>& on_rows) {
  GPUML_CHECK(opt.has_label, "{}: streaming a CSV needs a label column", path);
  GPUML_CHECK(opt.fill != FillPolicy::mean && !opt.map_string_labels && !opt.detect_string_labels,
              "{}: filling with the column mean (--csv-fill mean) and mapping string labels need the whole file; "
              "streaming (gpuml data pack) takes --csv-fill NUMBER and integer labels", path);
  std::ifstream in(path, std::ios::binary);
  GPUML_CHECK_KIND(ErrorKind::Io, in.good(), "{}: cannot open the CSV file", path);
  std::vector<char> block(std::max<size_t>(block_bytes, 1));
  std::string pending;  // text read but not yet parsed: an incomplete last record
  std::optional<CsvLayout> layout;
  int64_t next_line = 1, rows = 0;
  std::vector<float> x;
  std::vector<uint8_t> missing;
  std::vector<int64_t> y;
  bool at_eof = false;
  while (!at_eof) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    GPUML_CHECK_KIND(ErrorKind::Io, !in.bad(), "{}: read error", path);
    at_eof = in.gcount() < static_cast<std::streamsize>(block.size());
    pending.append(block.data(), static_cast<size_t>(in.gcount()));
    const size_t cut = at_eof ? pending.size() : last_record_end(pending);
    if (cut == 0) continue;  // one record longer than a block: read on
    std::string_view text(pending.data(), cut);
    std::vector<CsvRecord> records = split_csv_records(text, opt.delimiter, path, next_line);
    next_line += static_cast<int64_t>(std::count(text.begin(), text.end(), '\n'));
    size_t first = 0;
    if (!layout && !records.empty()) {
      layout = layout_of(records[0], opt, path);
      on_layout(*layout);
      first = layout->had_header ? 1 : 0;
    }
    if (layout && records.size() > first) {
      const int64_t n = static_cast<int64_t>(records.size() - first), f = layout->features;
      x.resize(static_cast<size_t>(n * f));
      missing.assign(static_cast<size_t>(n * f), 0);
      y.clear();
      for (int64_t r = 0; r < n; ++r) {
        parse_record(records[first + r], *layout, opt, path, {x.data() + r * f, missing.data() + r * f, nullptr, nullptr,
                                                              nullptr, &y});
        for (int64_t k = 0; k < f; ++k)
          if (missing[r * f + k]) x[r * f + k] = static_cast<float>(opt.fill_value);
      }
      on_rows(x.data(), y.data(), n);
      rows += n;
    }
    pending.erase(0, cut);
  }
  GPUML_CHECK_KIND(ErrorKind::Io, layout.has_value(), "{}: the CSV file is empty", path);
  GPUML_CHECK_KIND(ErrorKind::Io, rows > 0, "{}: the CSV file has a header but no data rows", path);
}

}  // namespace gpuml::data
