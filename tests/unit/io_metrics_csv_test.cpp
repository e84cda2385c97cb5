#include "io/metrics_csv.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/atomic_file.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

TEST(IoMetricsCsv, HeaderOnceAndTheWholeFileAfterEveryAppend) {
  TempDir dir;
  auto path = dir.path() / "metrics.csv";
  MetricsCsv csv(path);
  EXPECT_FALSE(std::filesystem::exists(path));
  csv.append({{"epoch", int64_t{1}}, {"train_loss", 0.5}, {"device", "cpu"}});
  EXPECT_EQ(read_file_bytes(path), "epoch,train_loss,device\n1,0.5,cpu\n");
  csv.append({{"epoch", int64_t{2}}, {"train_loss", 0.25}, {"device", "cuda:0"}});
  EXPECT_EQ(read_file_bytes(path), "epoch,train_loss,device\n1,0.5,cpu\n2,0.25,cuda:0\n");
  EXPECT_EQ(csv.num_rows(), 2u);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"metrics.csv"});
}

// A resumed run keeps the rows of the epochs its checkpoint covers and appends after them.
TEST(IoMetricsCsv, KeepExistingContinuesTheTableOfAResumedRun) {
  TempDir dir;
  auto path = dir.path() / "metrics.csv";
  {
    MetricsCsv csv(path);
    for (int64_t e = 1; e <= 3; ++e)
      csv.append({{"epoch", e}, {"train_loss", 1.0 / double(e)}, {"note", "a, \"quoted\" cell"}});
  }
  MetricsCsv resumed(path);
  resumed.keep_existing(2);  // the checkpoint covers two epochs; row 3 is redone
  EXPECT_EQ(resumed.num_rows(), 2u);
  EXPECT_EQ(resumed.columns(), (std::vector<std::string>{"epoch", "train_loss", "note"}));
  EXPECT_EQ(resumed.column_values("train_loss"), (std::vector<double>{1.0, 0.5}));
  EXPECT_TRUE(std::isnan(resumed.column_values("note")[0]));
  resumed.append({{"epoch", int64_t{3}}, {"train_loss", 0.125}, {"note", "x"}});
  EXPECT_EQ(read_file_bytes(path),
            "epoch,train_loss,note\n1,1,\"a, \"\"quoted\"\" cell\"\n2,0.5,\"a, \"\"quoted\"\" cell\"\n3,0.125,x\n");
  MetricsCsv fresh(dir.path() / "none.csv");
  fresh.keep_existing(5);  // no file yet: an empty table
  EXPECT_EQ(fresh.num_rows(), 0u);
}

TEST(IoMetricsCsv, NewColumnsExtendTheHeaderAndMissingCellsAreEmpty) {
  TempDir dir;
  MetricsCsv csv(dir.path() / "metrics.csv");
  csv.append({{"epoch", int64_t{1}}, {"train_loss", 0.75}});
  csv.append({{"epoch", int64_t{2}}, {"test_acc", 0.875}});
  csv.append({{"test_acc", 0.9375}, {"epoch", int64_t{3}}});
  EXPECT_EQ(csv.columns(), (std::vector<std::string>{"epoch", "train_loss", "test_acc"}));
  EXPECT_EQ(read_file_bytes(csv.path()),
            "epoch,train_loss,test_acc\n1,0.75,\n2,,0.875\n3,,0.9375\n");
}

TEST(IoMetricsCsv, DoublesReadBackExactlyAndNonFiniteAreSpelledOut) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> dist(-1e6, 1e6);
  TempDir dir;
  MetricsCsv csv(dir.path() / "m.csv");
  std::vector<double> values;
  for (int i = 0; i < 50; ++i)
    values.push_back(dist(rng) * std::pow(10.0, static_cast<int>(rng() % 40) - 20));
  for (double v : values) csv.append({{"v", v}});
  csv.append({{"v", std::nan("")}});
  csv.append({{"v", -INFINITY}});
  const std::string text = read_file_bytes(csv.path());
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(text.substr(at, nl - at));
  ASSERT_EQ(lines.size(), values.size() + 3);
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(std::stod(lines[i + 1]), values[i]) << lines[i + 1];
  EXPECT_EQ(lines[values.size() + 1], "nan");
  EXPECT_EQ(lines[values.size() + 2], "-inf");
}

TEST(IoMetricsCsv, FieldsThatNeedQuotesAreQuoted) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field(" padded"), "\" padded\"");
  TempDir dir;
  MetricsCsv csv(dir.path() / "m.csv");
  csv.append({{"loss, train", 1.5}, {"note", "ok, \"good\""}});
  EXPECT_EQ(read_file_bytes(csv.path()), "\"loss, train\",note\n1.5,\"ok, \"\"good\"\"\"\n");
}

TEST(IoMetricsCsv, BadRowsAreRejectedAndLeaveTheTableAsItWas) {
  TempDir dir;
  MetricsCsv csv(dir.path() / "m.csv");
  csv.append({{"epoch", int64_t{1}}});
  EXPECT_THROW(csv.append({{"epoch", int64_t{2}}, {"epoch", int64_t{3}}}), Error);
  EXPECT_THROW(csv.append({{"", 1.0}}), Error);
  EXPECT_EQ(csv.num_rows(), 1u);
  EXPECT_EQ(read_file_bytes(csv.path()), "epoch\n1\n");
}

TEST(IoMetricsCsv, FailedWriteKeepsNoRowSoARetryDoesNotDuplicate) {
  TempDir dir;
  MetricsCsv csv(dir.path() / "sub" / "m.csv");
  try {
    csv.append({{"epoch", int64_t{1}}, {"loss", 0.5}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
  EXPECT_EQ(csv.num_rows(), 0u);
  EXPECT_TRUE(csv.columns().empty());
  std::filesystem::create_directory(dir.path() / "sub");
  csv.append({{"epoch", int64_t{1}}, {"loss", 0.5}});
  EXPECT_EQ(read_file_bytes(csv.path()), "epoch,loss\n1,0.5\n");
}

}  // namespace
}  // namespace gpuml
