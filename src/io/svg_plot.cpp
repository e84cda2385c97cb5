#include "io/svg_plot.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/atomic_file.h"

namespace gpuml {

namespace {

// Layout in SVG user units (pixels).
constexpr double kWidth = 820;
constexpr double kTitleHeight = 40;
constexpr double kPanelHeight = 300;
constexpr double kMarginLeft = 75;
constexpr double kMarginRight = 190;  // room for the legend
constexpr double kMarginTop = 30;     // panel title
constexpr double kMarginBottom = 50;  // x tick labels and the x label

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

struct Range {
  double lo = 0, hi = 1;
};

// Smallest range holding every finite value; [0, 1] when there is none.
Range finite_range(const std::vector<const std::vector<double>*>& columns) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* values : columns)
    for (double v : *values)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (lo > hi) return {};
  return {lo, hi};
}

std::string format_tick(double value, double step) {
  int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  double rounded = std::round(value / step) * step;
  if (rounded == 0) rounded = 0;  // no "-0"
  return fmt::format("{:.{}f}", rounded, decimals);
}

class Axis {
 public:
  Axis(Range data, double pixel_from, double pixel_to)
      : pixel_from_(pixel_from), pixel_to_(pixel_to) {
    ticks_ = nice_ticks(data.lo, data.hi);
    lo_ = ticks_.front();
    hi_ = ticks_.back();
  }
  double to_pixel(double v) const {
    return pixel_from_ + (v - lo_) / (hi_ - lo_) * (pixel_to_ - pixel_from_);
  }
  const std::vector<double>& ticks() const { return ticks_; }
  double step() const { return ticks_.size() > 1 ? ticks_[1] - ticks_[0] : 1.0; }

 private:
  double pixel_from_, pixel_to_;
  double lo_ = 0, hi_ = 1;
  std::vector<double> ticks_;
};

void render_panel(std::string& svg, const LineChart& chart, const PlotPanel& panel, double top) {
  const double left = kMarginLeft, right = kWidth - kMarginRight;
  const double plot_top = top + kMarginTop, plot_bottom = top + kPanelHeight - kMarginBottom;

  std::vector<const std::vector<double>*> columns;
  for (const auto& s : panel.series) columns.push_back(&s.values);
  const Axis x_axis(finite_range({&chart.x}), left, right);
  const Axis y_axis(finite_range(columns), plot_bottom, plot_top);

  svg += fmt::format(
      "<g class=\"panel\">\n<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" "
      "font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      (left + right) / 2, top + 20, xml_escape(panel.title));
  // Grid lines and tick labels.
  for (double t : y_axis.ticks()) {
    double y = y_axis.to_pixel(t);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n",
        left, y, right, y);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6,
                       y + 4, format_tick(t, y_axis.step()));
  }
  for (double t : x_axis.ticks()) {
    double x = x_axis.to_pixel(t);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n", x,
        plot_top, x, plot_bottom);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x,
                       plot_bottom + 16, format_tick(t, x_axis.step()));
  }
  // Axes and their labels.
  svg += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#444\"/>\n",
      left, plot_top, right - left, plot_bottom - plot_top);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     (left + right) / 2, plot_bottom + 38, xml_escape(chart.x_label));
  double label_y = (plot_top + plot_bottom) / 2;
  svg += fmt::format(
      "<text x=\"18\" y=\"{:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1f})\">{}"
      "</text>\n",
      label_y, label_y, xml_escape(panel.y_label));

  // Series: a polyline per run of finite points, a dot for a lone point, and a legend entry.
  for (size_t s = 0; s < panel.series.size(); ++s) {
    const PlotSeries& series = panel.series[s];
    const char* color = kPalette[s % std::size(kPalette)];
    std::vector<std::string> run;
    auto close_run = [&] {
      if (run.size() == 1) {
        std::string_view xy = run[0];
        size_t comma = xy.find(',');
        svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>\n",
                           xy.substr(0, comma), xy.substr(comma + 1), color);
      } else if (run.size() > 1) {
        svg += fmt::format(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", color,
            fmt::join(run, " "));
      }
      run.clear();
    };
    for (size_t i = 0; i < series.values.size(); ++i) {
      if (std::isfinite(series.values[i]) && std::isfinite(chart.x[i]))
        run.push_back(fmt::format("{:.2f},{:.2f}", x_axis.to_pixel(chart.x[i]),
                                  y_axis.to_pixel(series.values[i])));
      else
        close_run();
    }
    close_run();
    double legend_y = plot_top + 12 + 20 * static_cast<double>(s);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
        "stroke-width=\"2\"/>\n",
        right + 15, legend_y, right + 40, legend_y, color);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", right + 46, legend_y + 4,
                       xml_escape(series.name));
  }
  svg += "</g>\n";
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) {  // one value: give it room on both sides
    double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw_step = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw_step)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0})
    if (m * magnitude >= raw_step) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first;; t += step) {
    ticks.push_back(t);
    if (t >= hi - 1e-9 * step) break;
  }
  return ticks;
}

std::string render_svg_chart(const LineChart& chart) {
  for (const auto& panel : chart.panels)
    for (const auto& series : panel.series)
      GPUML_CHECK(series.values.size() == chart.x.size(),
                  "svg chart '{}': series '{}' in panel '{}' has {} values for {} x values",
                  chart.title, series.name, panel.title, series.values.size(), chart.x.size());
  const double height =
      kTitleHeight + kPanelHeight * static_cast<double>(std::max<size_t>(1, chart.panels.size()));
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"26\" text-anchor=\"middle\" font-size=\"18\" "
      "font-weight=\"bold\">{3}</text>\n",
      kWidth, height, kWidth / 2, xml_escape(chart.title));
  for (size_t p = 0; p < chart.panels.size(); ++p)
    render_panel(svg, chart, chart.panels[p], kTitleHeight + kPanelHeight * static_cast<double>(p));
  svg += "</svg>\n";
  return svg;
}

void write_svg_chart(const std::filesystem::path& path, const LineChart& chart) {
  write_file_atomically(path, render_svg_chart(chart));
}

}  // namespace gpuml
