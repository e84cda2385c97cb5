#include "data/csv_records.h"

#include "core/error.h"

namespace gpuml::data {

std::vector<CsvRecord> split_csv_records(std::string_view text, char delimiter, const std::string& name,
                                         int64_t first_line) {
  std::vector<CsvRecord> records;
  size_t pos = 0;
  int64_t line = first_line;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;  // a UTF-8 byte order mark, as spreadsheets write
  while (pos < text.size()) {
    // A blank line (LF or CRLF alone) is no record.
    if (text[pos] == '\n' || (text[pos] == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n')) {
      pos += text[pos] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    CsvRecord record;
    record.line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      std::string field;
      bool quoted = false;
      if (pos < text.size() && text[pos] == '"') {
        quoted = true;
        int64_t open_line = line;
        ++pos;
        while (true) {
          GPUML_CHECK_KIND(ErrorKind::Io, pos < text.size(), "{}:{}:{}: unterminated quoted field", name, open_line,
                           record.fields.size() + 1);
          char c = text[pos++];
          if (c == '"') {
            if (pos < text.size() && text[pos] == '"') {
              field += '"';
              ++pos;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        GPUML_CHECK_KIND(ErrorKind::Io,
                         pos >= text.size() || text[pos] == delimiter || text[pos] == '\n' ||
                             (text[pos] == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n'),
                         "{}:{}:{}: unexpected character '{}' after a closing quote", name, line,
                         record.fields.size() + 1, text[pos]);
      } else {
        size_t start = pos;
        while (pos < text.size() && text[pos] != delimiter && text[pos] != '\n') ++pos;
        size_t end = pos;
        if (end > start && text[end - 1] == '\r' && (pos >= text.size() || text[pos] == '\n')) --end;
        field.assign(text.substr(start, end - start));
        GPUML_CHECK_KIND(ErrorKind::Io, field.find('"') == std::string::npos,
                         "{}:{}:{}: a quote inside an unquoted field (quote the whole field and double the quote)",
                         name, line, record.fields.size() + 1);
      }
      record.fields.push_back(std::move(field));
      record.quoted.push_back(quoted);
      if (pos >= text.size()) {
        end_of_record = true;
      } else if (text[pos] == delimiter) {
        ++pos;
      } else {  // '\n' or "\r\n"
        pos += text[pos] == '\r' ? 2 : 1;
        ++line;
        end_of_record = true;
      }
    }
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace gpuml::data
