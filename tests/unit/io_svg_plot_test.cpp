#include "io/svg_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <regex>

#include "core/error.h"
#include "core/atomic_file.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;

// Checks tags nest and close, and that every '&' starts an entity: enough XML to catch
// a broken writer without an XML library.
void expect_well_formed(const std::string& svg) {
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  std::vector<std::string> open;
  size_t at = 0;
  while ((at = svg.find('<', at)) != std::string::npos) {
    size_t end = svg.find('>', at);
    ASSERT_NE(end, std::string::npos) << "unterminated tag at " << at;
    std::string tag = svg.substr(at + 1, end - at - 1);
    ASSERT_EQ(tag.find('<'), std::string::npos) << "'<' inside a tag: " << tag;
    if (tag[0] == '/') {
      ASSERT_FALSE(open.empty()) << "stray </" << tag;
      EXPECT_EQ(open.back(), tag.substr(1));
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
    at = end + 1;
  }
  EXPECT_TRUE(open.empty()) << "unclosed <" << (open.empty() ? "" : open.back());
  for (size_t amp = svg.find('&'); amp != std::string::npos; amp = svg.find('&', amp + 1))
    EXPECT_TRUE(std::regex_search(svg.substr(amp, 6), std::regex("^&(amp|lt|gt|quot|apos);")))
        << "raw & at " << amp;
  EXPECT_EQ(svg.find("nan"), std::string::npos) << "a NaN leaked into the SVG";
  EXPECT_EQ(svg.find("inf"), std::string::npos) << "an infinity leaked into the SVG";
}

// The point lists of every <polyline>, each as (x, y) pairs.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> lines;
  std::regex polyline("<polyline[^>]*points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), polyline);
       it != std::sregex_iterator(); ++it) {
    std::vector<std::pair<double, double>> points;
    std::string list = (*it)[1];
    std::regex point("(-?[0-9.]+),(-?[0-9.]+)");
    for (auto p = std::sregex_iterator(list.begin(), list.end(), point);
         p != std::sregex_iterator(); ++p)
      points.emplace_back(std::stod((*p)[1]), std::stod((*p)[2]));
    lines.push_back(points);
  }
  return lines;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

LineChart training_chart(size_t epochs, std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.05, 0.95);
  LineChart chart{.title = "mlp <mnist> & friends", .x_label = "epoch", .x = {}, .panels = {}};
  PlotPanel loss{.title = "loss",
                 .y_label = "cross-entropy",
                 .series = {{"train loss", {}}, {"test loss", {}}}};
  PlotPanel acc{
      .title = "accuracy", .y_label = "fraction", .series = {{"train acc", {}}, {"test acc", {}}}};
  for (size_t e = 1; e <= epochs; ++e) {
    chart.x.push_back(static_cast<double>(e));
    for (auto* s : {&loss.series[0], &loss.series[1]})
      s->values.push_back(3 * unit(rng) / static_cast<double>(e));
    for (auto* s : {&acc.series[0], &acc.series[1]}) s->values.push_back(unit(rng));
  }
  chart.panels = {loss, acc};
  return chart;
}

TEST(IoSvgPlot, TrainingCurvesHaveOnePolylinePerSeriesWithAPointPerEpoch) {
  std::mt19937 rng(std::random_device{}());
  const size_t epochs = 2 + rng() % 30;
  LineChart chart = training_chart(epochs, rng);
  const std::string svg = render_svg_chart(chart);
  expect_well_formed(svg);
  for (const char* name :
       {"train loss", "test loss", "train acc", "test acc", "cross-entropy", "epoch"})
    EXPECT_NE(svg.find(name), std::string::npos) << name;
  EXPECT_NE(svg.find("mlp &lt;mnist&gt; &amp; friends"), std::string::npos);
  auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 4u);
  for (const auto& line : lines) {
    EXPECT_EQ(line.size(), epochs);
    for (size_t i = 1; i < line.size(); ++i)
      EXPECT_GT(line[i].first, line[i - 1].first) << "x must increase";
    for (const auto& [x, y] : line) {
      EXPECT_GE(x, 0);
      EXPECT_LE(x, 820);
      EXPECT_GE(y, 0);
      EXPECT_LE(y, 40 + 2 * 300);
    }
  }
  // Higher values are drawn higher (smaller y): compare the largest and smallest train loss.
  const auto& train = chart.panels[0].series[0].values;
  size_t hi = std::max_element(train.begin(), train.end()) - train.begin();
  size_t lo = std::min_element(train.begin(), train.end()) - train.begin();
  if (hi != lo) {
    EXPECT_LT(lines[0][hi].second, lines[0][lo].second);
  }
}

TEST(IoSvgPlot, SingleEpochDrawsDots) {
  std::mt19937 rng(std::random_device{}());
  const std::string svg = render_svg_chart(training_chart(1, rng));
  expect_well_formed(svg);
  EXPECT_TRUE(polylines(svg).empty());
  EXPECT_EQ(count(svg, "<circle"), 4u);
}

TEST(IoSvgPlot, NanBreaksTheLineAndLonePointsBecomeDots) {
  const double nan = std::nan("");
  LineChart chart{.title = "t", .x = {1, 2, 3, 4, 5, 6, 7}, .panels = {}};
  chart.panels.push_back({.title = "p",
                          .y_label = "y",
                          .series = {{"gappy", {0.5, 0.7, nan, 0.2, 0.3, 0.4, nan}},
                                     {"lonely", {nan, nan, 0.9, nan, INFINITY, nan, nan}},
                                     {"empty", {nan, nan, nan, nan, nan, nan, nan}}}});
  const std::string svg = render_svg_chart(chart);
  expect_well_formed(svg);
  auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].size(), 2u);
  EXPECT_EQ(lines[1].size(), 3u);
  EXPECT_EQ(count(svg, "<circle"), 1u);
  EXPECT_NE(svg.find("empty"), std::string::npos);  // still in the legend
}

TEST(IoSvgPlot, AllNanOrConstantDataStillRenders) {
  LineChart chart{.title = "flat", .x = {3, 3}, .panels = {}};
  chart.panels.push_back({.title = "p", .y_label = "y", .series = {{"const", {2.5, 2.5}}}});
  chart.panels.push_back(
      {.title = "q", .y_label = "y", .series = {{"none", {std::nan(""), std::nan("")}}}});
  const std::string svg = render_svg_chart(chart);
  expect_well_formed(svg);
  EXPECT_EQ(polylines(svg).size(), 1u);
  expect_well_formed(render_svg_chart(LineChart{.title = "no panels", .x = {}, .panels = {}}));
}

TEST(IoSvgPlot, MismatchedSeriesLengthIsRejectedByName) {
  LineChart chart{.title = "t", .x = {1, 2, 3}, .panels = {}};
  chart.panels.push_back({.title = "p", .y_label = "y", .series = {{"short one", {1, 2}}}});
  try {
    render_svg_chart(chart);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    EXPECT_NE(e.message().find("'short one'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("2 values for 3 x values"), std::string::npos) << e.message();
  }
}

TEST(IoSvgPlot, NiceTicksCoverTheRangeInEvenRoundSteps) {
  const std::vector<double> unit_ticks = nice_ticks(0, 1);
  ASSERT_EQ(unit_ticks.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(unit_ticks[i], 0.2 * static_cast<double>(i), 1e-12);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> exponent(-6, 6), unit(-1, 1);
  for (int trial = 0; trial < 200; ++trial) {
    double scale = std::pow(10.0, exponent(rng));
    double a = unit(rng) * scale, b = unit(rng) * scale;
    auto ticks = nice_ticks(std::min(a, b), std::max(a, b));
    SCOPED_TRACE(fmt::format("[{}, {}]", std::min(a, b), std::max(a, b)));
    ASSERT_GE(ticks.size(), 3u);
    EXPECT_LE(ticks.size(), 12u);
    EXPECT_LE(ticks.front(), std::min(a, b));
    EXPECT_GE(ticks.back(), std::max(a, b) - 1e-9 * scale);
    double step = ticks[1] - ticks[0];
    double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 ||
                std::abs(mantissa - 5) < 1e-6)
        << step;
  }
  auto widened = nice_ticks(5, 5);
  EXPECT_LT(widened.front(), 5);
  EXPECT_GT(widened.back(), 5);
}

TEST(IoSvgPlot, WritesTheRenderedChartAtomically) {
  std::mt19937 rng(std::random_device{}());
  LineChart chart = training_chart(5, rng);
  TempDir dir;
  write_svg_chart(dir.path() / "curves.svg", chart);
  EXPECT_EQ(read_file_bytes(dir.path() / "curves.svg"), render_svg_chart(chart));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"curves.svg"});
}

}  // namespace
}  // namespace gpuml
