#include "io/metrics_csv.h"

#include <algorithm>
#include <cmath>

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
