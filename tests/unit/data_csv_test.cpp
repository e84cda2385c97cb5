// CSV reader: header detection, label column by name or index, RFC 4180 quoting, string label
// mapping, fill policies, and errors that point at file:line:column.
#include <gtest/gtest.h>
#include <fmt/format.h>


#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/csv.h"
#include "train/dataset_source.h"
#include "data_test_fixture.h"

namespace gpuml::data {
namespace {

namespace fs = std::filesystem;

class DataCsvTest : public testing::SeededDirTest {
 protected:
  float random_value() { return std::uniform_real_distribution<float>(-100, 100)(rng_); }
};

template <typename Fn>
void expect_io_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
    for (const std::string& f : fragments) EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
  }
}

TEST_F(DataCsvTest, HeaderAutoDetectedAndLabelLastByDefault) {
  std::vector<float> v(6);
  for (float& x : v) x = random_value();
  std::string body = fmt::format("{},{},3\n{},{},0\n{},{},7\n", v[0], v[1], v[2], v[3], v[4], v[5]);
  for (bool header : {true, false}) {
    CsvData d = read_csv(write("a.csv", (header ? "a,b,label\n" : "") + body));
    EXPECT_EQ(d.had_header, header);
    ASSERT_EQ(d.features.shape(), (Shape{3, 2}));
    ASSERT_EQ(d.labels.shape(), (Shape{3}));
    EXPECT_EQ(d.labels.dtype(), DType::i64);
    for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(d.features.data<float>()[i], v[i]);
    EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{3, 0, 7}));
    EXPECT_EQ(d.feature_names, header ? (std::vector<std::string>{"a", "b"}) : (std::vector<std::string>{"column1", "column2"}));
  }
  CsvOptions forced;
  forced.header = CsvHeader::present;
  CsvData d = read_csv(write("b.csv", body), forced);  // the first numeric row is taken as a header
  EXPECT_EQ(d.features.dim(0), 2);
}

TEST_F(DataCsvTest, LabelByNameOrIndexAndNegativeIndex) {
  float a = random_value(), b = random_value();
  std::string text = fmt::format("y,a,b\n2,{},{}\n5,{},{}\n", a, b, b, a);
  CsvOptions by_name;
  by_name.label_name = "y";
  CsvOptions by_index;
  by_index.label_index = 0;
  CsvOptions by_negative;
  by_negative.label_index = -3;
  for (const CsvOptions& opt : {by_name, by_index, by_negative}) {
    CsvData d = read_csv(write("a.csv", text), opt);
    EXPECT_EQ(d.label_name, "y");
    EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{2, 5}));
    EXPECT_FLOAT_EQ(d.features.data<float>()[0], a);
    EXPECT_FLOAT_EQ(d.features.data<float>()[3], a);
  }
  CsvOptions missing_name;
  missing_name.label_name = "target";
  expect_io_error([&] { read_csv(write("a.csv", text), missing_name); }, {"a.csv", "no column named 'target'", "y, a, b"});
  CsvOptions out_of_range;
  out_of_range.label_index = 5;
  expect_io_error([&] { read_csv(write("a.csv", text), out_of_range); }, {"label column 5 is out of range"});
  CsvOptions no_label;
  no_label.has_label = false;
  CsvData d = read_csv(write("a.csv", text), no_label);
  EXPECT_EQ(d.features.shape(), (Shape{2, 3}));
  EXPECT_FALSE(d.labels.defined());
}

TEST_F(DataCsvTest, QuotedFieldsPerRfc4180) {
  float v = random_value();
  std::string text = "\"name, with comma\",\"say \"\"hi\"\"\",\"multi\nline\",label\r\n"
                     "\"1.5\", 2 ,\"" + fmt::format("{}", v) + "\",\"1\"\r\n"
                     "\r\n"
                     "3,4,5,0";  // no final newline
  CsvData d = read_csv(write("q.csv", text));
  EXPECT_EQ(d.feature_names, (std::vector<std::string>{"name, with comma", "say \"hi\"", "multi\nline"}));
  ASSERT_EQ(d.features.shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(d.features.data<float>()[0], 1.5f);
  EXPECT_FLOAT_EQ(d.features.data<float>()[1], 2.f);
  EXPECT_FLOAT_EQ(d.features.data<float>()[2], v);
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{1, 0}));
  expect_io_error([&] { read_csv(write("u.csv", "a,b\n1,\"2\n")); }, {"u.csv:2:2", "unterminated"});
  expect_io_error([&] { read_csv(write("c.csv", "a,b\n1,\"2\"x\n")); }, {"c.csv:2:2", "after a closing quote"});
}

TEST_F(DataCsvTest, BadValuesNameFileLineColumn) {
  // The multi-line quoted header makes the bad row's line differ from its record number.
  std::string header = "\"a\nb\",c,label\n";
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,2,0\n3,abc,1\n")); },
                  {"bad.csv:4:2", "value 'abc' is not a number", "column 'c'"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,2,0\n,4,1\n")); }, {"bad.csv:4:1", "missing value"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,nan,0\n")); }, {"bad.csv:3:2", "'nan' is not finite"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,inf,0\n")); }, {"bad.csv:3:2", "not finite"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,2,0\n3,4,1.5\n")); },
                  {"bad.csv:4:3", "label '1.5' is not an integer", "--csv-label NAME"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,2,0\n3,4\n")); }, {"bad.csv:4:", "2 fields, expected 3"});
  expect_io_error([&] { read_csv(write("bad.csv", header + "1,2,0\n3,4,5,6\n")); }, {"bad.csv:4:", "4 fields"});
  expect_io_error([&] { read_csv(write("empty.csv", "")); }, {"empty.csv", "empty"});
  expect_io_error([&] { read_csv(write("blank.csv", "\n\r\n\n")); }, {"blank.csv", "empty"});
  expect_io_error([&] { read_csv(write("h.csv", "a,b,label\n")); }, {"h.csv", "no data rows"});
  expect_io_error([&] { read_csv((dir_ / "absent.csv").string()); }, {"absent.csv", "cannot open"});
}

// stream_csv (gpuml data pack) reads blocks of records; whatever the block size, even smaller
// than one record, it yields exactly what read_csv does, and errors keep their file line.
TEST_F(DataCsvTest, StreamingInBlocksGivesWhatReadCsvGives) {
  std::string text = "\xEF\xBB\xBF\"x\ny\",\"q,r\",label\r\n";  // BOM, quoted header with a newline and a comma
  const int rows = 300;
  for (int r = 0; r < rows; ++r) {
    text += r % 7 == 0 ? fmt::format("\"{}\",{},{}\r\n", random_value(), random_value(), r % 5)
                       : fmt::format("{},{},{}\n", random_value(), random_value(), r % 5);
    if (r % 50 == 0) text += "\n";  // blank lines are skipped
  }
  std::string path = write("big.csv", text);
  CsvData whole = read_csv(path);
  for (size_t block : {size_t{1}, size_t{7}, size_t{64}, size_t{1000}, size_t{1} << 20}) {
    std::vector<float> x;
    std::vector<int64_t> y;
    CsvLayout layout;
    int calls = 0;
    stream_csv(path, {}, block, [&](const CsvLayout& l) { layout = l; ++calls; },
               [&](const float* xs, const int64_t* ys, int64_t n) {
                 x.insert(x.end(), xs, xs + n * layout.features);
                 y.insert(y.end(), ys, ys + n);
               });
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(layout.had_header);
    EXPECT_EQ(layout.feature_names, whole.feature_names);
    ASSERT_EQ(y.size(), static_cast<size_t>(rows)) << "block " << block;
    EXPECT_EQ(0, std::memcmp(x.data(), whole.features.data<float>(), x.size() * 4)) << "block " << block;
    EXPECT_EQ(0, std::memcmp(y.data(), whole.labels.data<int64_t>(), y.size() * 8)) << "block " << block;
  }
  // An error deep in the file names its line, whichever block it falls in.
  std::string bad = "a,b,label\n";
  for (int r = 0; r < 100; ++r) bad += "1,2,3\n";
  bad += "1,oops,3\n";
  for (size_t block : {size_t{5}, size_t{64}, size_t{4096}})
    expect_io_error([&] { stream_csv(write("bad.csv", bad), {}, block, [](const CsvLayout&) {}, [](const float*, const int64_t*, int64_t) {}); },
                    {"bad.csv:102:2", "value 'oops' is not a number"});
}

TEST_F(DataCsvTest, FillPolicies) {
  float a = random_value(), b = random_value(), c = random_value();
  std::string text = fmt::format("x,y,label\n{},,0\n?,{},1\n{},NaN,0\n", a, b, c);
  CsvOptions constant;
  constant.fill = FillPolicy::constant;
  constant.fill_value = -9;
  CsvData d = read_csv(write("f.csv", text), constant);
  EXPECT_EQ(d.features.to_doubles(), (std::vector<double>{a, -9, -9, b, c, -9}));
  CsvOptions mean;
  mean.fill = FillPolicy::mean;
  d = read_csv(write("f.csv", text), mean);
  // The mean is taken in double over the values as written in the file (fmt's shortest text of
  // each float, parsed back as double), which is not double(a) + double(c) when they cancel.
  const double text_a = std::stod(fmt::format("{}", a)), text_c = std::stod(fmt::format("{}", c));
  float mean_x = static_cast<float>((text_a + text_c) / 2);
  EXPECT_FLOAT_EQ(d.features.data<float>()[2], mean_x);
  EXPECT_FLOAT_EQ(d.features.data<float>()[1], b);
  EXPECT_FLOAT_EQ(d.features.data<float>()[5], b);
  EXPECT_FLOAT_EQ(d.features.data<float>()[0], a);
  expect_io_error([&] { read_csv(write("g.csv", "x,y,label\n1,,0\n2,,1\n"), mean); }, {"g.csv", "column 'y' has no numeric value"});
  expect_io_error([&] { read_csv(write("l.csv", "x,label\n1,\n"), constant); }, {"l.csv:2:2", "label ''"});
}

TEST_F(DataCsvTest, StringLabelsMapToSortedIds) {
  float v = random_value();
  std::string text = fmt::format("f,species\n{},virginica\n1,setosa\n2, versicolor \n3,setosa\n", v);
  expect_io_error([&] { read_csv(write("s.csv", text)); }, {"s.csv:2:2", "'virginica' is not an integer"});
  CsvOptions opt;
  opt.map_string_labels = true;
  opt.label_name = "species";
  CsvData d = read_csv(write("s.csv", text), opt);
  EXPECT_EQ(d.label_classes, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{2, 0, 1, 0}));
  EXPECT_FLOAT_EQ(d.features.data<float>()[0], v);
  CsvOptions auto_header;  // string labels in the data do not make the first row a header
  auto_header.map_string_labels = true;
  d = read_csv(write("n.csv", "1,cat\n2,dog\n"), auto_header);
  EXPECT_FALSE(d.had_header);
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{0, 1}));
}

// Issue 18: string class labels (iris) are common; detect_string_labels (what `gpuml train` sets)
// maps them without being asked, keeps integer labels as ids, and refuses a fractional "label"
// (a feature column) naming --csv-label.
TEST_F(DataCsvTest, DetectedStringLabelsMapIntegersStayFractionsAreRefused) {
  CsvOptions detect;
  detect.detect_string_labels = true;
  CsvData d = read_csv(write("iris.csv", "5.1,3.5,setosa\n6.3,2.9,virginica\n5.9,3.0,versicolor\n"), detect);
  EXPECT_FALSE(d.had_header);  // the names in the label column do not make the first row a header
  EXPECT_EQ(d.label_classes, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{0, 2, 1}));
  d = read_csv(write("ints.csv", "a,label\n1,7\n2,3\n"), detect);
  EXPECT_TRUE(d.label_classes.empty());
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{7, 3}));
  expect_io_error([&] { read_csv(write("frac.csv", "label,a\n1,0.5\n0,0.25\n"), detect); },
                  {"frac.csv:2:2", "label '0.5' is not an integer class id", "--csv-label NAME"});
  // Streaming (gpuml data pack) cannot see every label first: it says what to do instead.
  expect_io_error(
      [&] {
        stream_csv(write("s.csv", "a,label\n1,cat\n"), {}, 1 << 20, [](const CsvLayout&) {},
                   [](const float*, const int64_t*, int64_t) {});
      },
      {"s.csv:2:2", "'cat' is not an integer", "gpuml train --data FILE.csv"});
}

TEST_F(DataCsvTest, OtherDelimiter) {
  CsvOptions opt;
  opt.delimiter = ';';
  CsvOptions filled = opt;
  filled.fill = FillPolicy::constant;
  CsvData d = read_csv(write("s.csv", "a;b;label\n1.5;\"x;y\";2\n"), filled);
  EXPECT_EQ(d.features.to_doubles(), (std::vector<double>{1.5, 0}));
  EXPECT_EQ(d.labels.to_doubles(), (std::vector<double>{2}));
  expect_io_error([&] { read_csv(write("s.csv", "a;label\n1,5;2\n"), opt); }, {"s.csv:2:1", "'1,5' is not a number"});
}

// Found while fuzzing CSV (issue 16): a label of 2^63 - 1 made the class count (max + 1) overflow.
TEST_F(DataCsvTest, LabelsTooLargeForAClassIdAreRefused) {
  DatasetOptions o;
  o.path = write("big.csv", "a,label\n1,9223372036854775807\n2,0\n");
  try {
    load_training_data(o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("label 9223372036854775807 in row 0 is too large for a class id"), std::string::npos)
        << e.message();
  }
  // A long non-numeric label is quoted as a short prefix.
  expect_io_error([&] { read_csv(write("long.csv", "a,label\n1," + std::string(10000, 'q') + "\n")); },
                  {"long.csv:2:2", "(10000 bytes)"});
}

}  // namespace
}  // namespace gpuml::data
