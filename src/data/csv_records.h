// Splits CSV text into records per RFC 4180: fields separated by a delimiter, records by LF or
// CRLF, quoted fields may hold delimiters, newlines and doubled quotes (""). Blank lines are
// skipped. Each record remembers the line it starts on, for file:line:column messages.
//
//   std::vector<CsvRecord> rows = split_csv_records("a,\"b,c\"\n1,2\n", ',', "x.csv");
//   // rows[0].fields == {"a", "b,c"}, rows[1].line == 2
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gpuml::data {

struct CsvRecord {
  int64_t line = 0;  // 1-based line where the record starts
  std::vector<std::string> fields;
  std::vector<bool> quoted;  // whether each field was quoted (quoted text is never trimmed)
};

// Throws an Io error "<name>:<line>:<column>: ..." for an unterminated quote or text after a
// closing quote. `first_line` is the file line `text` starts on (a block of a larger file).
std::vector<CsvRecord> split_csv_records(std::string_view text, char delimiter, const std::string& name,
                                         int64_t first_line = 1);

}  // namespace gpuml::data
