// metrics.csv: one row per epoch (or eval), one column per metric, always a complete file.
//
//   MetricsCsv csv("runs/mnist/metrics.csv");
//   csv.append({{"epoch", int64_t{1}}, {"train_loss", 0.41}, {"device", "cpu"}});
//
// The rows are few and small, so the whole file is rewritten atomically on every append: a
// reader (a spreadsheet, a plotting script, `tail`) never sees half a row, and a crash leaves
// the previous complete file. Columns appear in first-seen order; a row that brings a new
// column extends the header (earlier rows get an empty cell), a row that lacks one gets an
// empty cell. Doubles are written in the shortest form that reads back exactly ("nan", "inf"
// for non-finite values); strings are quoted as RFC 4180 says when they need it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace gpuml {

using CsvValue = std::variant<int64_t, double, std::string>;
using MetricsRow = std::vector<std::pair<std::string, CsvValue>>;

class MetricsCsv {
 public:
  // Starts an empty table; nothing is written until the first append (an existing file at
  // `path` is replaced then).
  explicit MetricsCsv(std::filesystem::path path);

  // Throws ErrorKind::Invalid on an empty or repeated column name in `row`, ErrorKind::Io when
  // the file cannot be written (the row is then not kept, so a retry does not duplicate it).
  void append(const MetricsRow& row);

  // For a resumed run: takes the header and the first `max_rows` rows of the file at path()
  // (written by this class; absent or empty is fine), so that appending continues the table
  // instead of replacing it. Throws ErrorKind::Invalid when the file is not such a table.
  void keep_existing(size_t max_rows);
  // The column's cells as numbers (NaN where empty or not a number), one per row.
  std::vector<double> column_values(const std::string& name) const;

  std::string render() const;  // the file's contents
  const std::vector<std::string>& columns() const { return columns_; }
  size_t num_rows() const { return rows_.size(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::string> columns_;
  // Rendered cells, indexed like columns_; older rows may be shorter than columns_.
  std::vector<std::vector<std::string>> rows_;
};

// One CSV field, quoted when it contains a comma, quote, CR/LF or leading/trailing space.
std::string csv_field(std::string_view text);

}  // namespace gpuml
