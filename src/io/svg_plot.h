// SVG line charts of training curves, written atomically; opens in any browser.
//
//   LineChart chart{.title = "mnist mlp", .x = {1, 2, 3}};
//   chart.panels.push_back({.title = "loss", .y_label = "cross-entropy",
//                           .series = {{"train loss", {0.9, 0.5, 0.4}},
//                                      {"test loss", {0.8, 0.6, 0.5}}}});
//   chart.panels.push_back({.title = "accuracy", .y_label = "fraction correct",
//                           .series = {{"train acc", {0.7, 0.85, 0.9}},
//                                      {"test acc", {0.72, 0.83, 0.86}}}});
//   write_svg_chart("runs/mnist/curves.svg", chart);
//
// Panels are stacked vertically and share the x axis values (epochs). Each has its own y axis
// with "nice" ticks (1, 2, 5 x 10^k), grid lines, a legend on the right, and one polyline per
// run of finite values: a NaN or infinity breaks the line, and a point with no finite
// neighbour is drawn as a dot, so a single epoch still shows up.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace gpuml {

struct PlotSeries {
  std::string name;
  std::vector<double> values;  // values[i] is plotted at LineChart::x[i]
};

struct PlotPanel {
  std::string title;
  std::string y_label;
  std::vector<PlotSeries> series;
};

struct LineChart {
  std::string title;
  std::string x_label = "epoch";
  std::vector<double> x;
  std::vector<PlotPanel> panels;
};

// Throws ErrorKind::Invalid when a series' length differs from x's (naming the series).
std::string render_svg_chart(const LineChart& chart);
void write_svg_chart(const std::filesystem::path& path, const LineChart& chart);

// Tick positions covering [lo, hi] with about `target` steps of 1, 2 or 5 x 10^k; the first tick
// is <= lo and the last >= hi. Degenerate ranges (lo == hi, non-finite) are widened first.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace gpuml
