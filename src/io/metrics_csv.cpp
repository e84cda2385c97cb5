#include "io/metrics_csv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "core/atomic_file.h"

namespace gpuml {

namespace {

std::string render_value(const CsvValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&value)) {
    if (std::isnan(*d)) return "nan";
    if (std::isinf(*d)) return *d > 0 ? "inf" : "-inf";
    return fmt::format("{}", *d);  // shortest representation that round-trips
  }
  return csv_field(std::get<std::string>(value));
}

}  // namespace

std::string csv_field(std::string_view text) {
  const bool needs_quotes = text.find_first_of(",\"\r\n") != std::string_view::npos ||
                            (!text.empty() && (text.front() == ' ' || text.back() == ' '));
  if (!needs_quotes) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

MetricsCsv::MetricsCsv(std::filesystem::path path) : path_(std::move(path)) {}

namespace {

// Splits one line written by render(): cells separated by commas, quoted ones with "" escapes.
// The cells are kept rendered (quotes included) since append() stores rendered cells.
std::vector<std::string> split_rendered_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    if (ch == ',' && !quoted) cells.emplace_back();
    else cells.back() += ch;
  }
  return cells;
}

std::string unquote(const std::string& cell) {
  if (cell.size() < 2 || cell.front() != '"') return cell;
  std::string out;
  for (size_t i = 1; i + 1 < cell.size(); ++i) {
    out += cell[i];
    if (cell[i] == '"') ++i;  // "" stands for one quote
  }
  return out;
}

}  // namespace

void MetricsCsv::keep_existing(size_t max_rows) {
  columns_.clear();
  rows_.clear();
  std::ifstream in(path_);
  if (!in) return;
  std::string line;
  if (!std::getline(in, line) || line.empty()) return;
  for (const std::string& cell : split_rendered_line(line)) columns_.push_back(unquote(cell));
  size_t line_number = 1;
  while (rows_.size() < max_rows && std::getline(in, line)) {
    ++line_number;
    std::vector<std::string> cells = split_rendered_line(line);
    GPUML_CHECK(cells.size() <= columns_.size(), "{}:{}: {} cells but the header has {} columns", path_.string(),
                line_number, cells.size(), columns_.size());
    rows_.push_back(std::move(cells));
  }
}

std::vector<double> MetricsCsv::column_values(const std::string& name) const {
  size_t index = std::find(columns_.begin(), columns_.end(), name) - columns_.begin();
  std::vector<double> values;
  for (const auto& row : rows_) {
    double v = std::nan("");
    if (index < row.size() && !row[index].empty()) {
      char* end = nullptr;
      double parsed = std::strtod(row[index].c_str(), &end);
      if (end && *end == '\0') v = parsed;
    }
    values.push_back(v);
  }
  return values;
}

void MetricsCsv::append(const MetricsRow& row) {
  std::vector<std::string> columns = columns_;
  std::vector<std::string> cells(columns.size());
  std::vector<bool> seen(columns.size(), false);
  for (const auto& [name, value] : row) {
    GPUML_CHECK(!name.empty(), "metrics '{}': a column has an empty name", path_.string());
    size_t index = std::find(columns.begin(), columns.end(), name) - columns.begin();
    if (index == columns.size()) {
      columns.push_back(name);
      cells.emplace_back();
      seen.push_back(false);
    }
    GPUML_CHECK(!seen[index], "metrics '{}': column '{}' given twice in one row", path_.string(),
                name);
    seen[index] = true;
    cells[index] = render_value(value);
  }
  // Commit only after the write succeeds, so a failed write can be retried without a duplicate row.
  std::swap(columns, columns_);
  rows_.push_back(std::move(cells));
  try {
    write_file_atomically(path_, render());
  } catch (...) {
    rows_.pop_back();
    std::swap(columns, columns_);
    throw;
  }
}

std::string MetricsCsv::render() const {
  std::string out;
  for (size_t c = 0; c < columns_.size(); ++c) {
    if (c) out += ',';
    out += csv_field(columns_[c]);
  }
  out += '\n';
  for (const auto& row : rows_) {
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (c) out += ',';
      if (c < row.size()) out += row[c];
    }
    out += '\n';
  }
  return out;
}

}  // namespace gpuml
