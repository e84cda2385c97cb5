#include "nn/summary.h"

#include <fmt/ranges.h>

#include <algorithm>

namespace gpuml::nn {
namespace {

std::string batched_shape(int64_t batch, const Shape& per_sample) {
  Shape s{batch};
  s.insert(s.end(), per_sample.begin(), per_sample.end());
  return shape_str(s);
}

std::string human_flops(int64_t flops) {
  const char* units[] = {"FLOP", "KFLOP", "MFLOP", "GFLOP", "TFLOP"};
  double v = static_cast<double>(flops);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} FLOP", flops) : fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string human_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string model_summary(const Model& model, int64_t batch_size,
                          std::optional<size_t> planned_peak_bytes) {
  struct Row {
    std::string layer, shape, params;
  };
  std::vector<Row> rows;
  rows.push_back({"Input", batched_shape(batch_size, model.input_shape()), ""});
  std::vector<Shape> shapes = model.root().child_output_shapes(model.input_shape());
  for (size_t i = 0; i < model.root().size(); ++i) {
    const Sequential::Child& child = model.root().children()[i];
    std::vector<ParamInfo> infos;
    child.module->params(child.name, infos);
    int64_t count = 0;
    for (const ParamInfo& p : infos)
      if (p.trainable) count += numel(p.shape);
    const std::string from = child.inputs.empty() ? "" : fmt::format(" <- {}", fmt::join(child.inputs, ", "));
    rows.push_back({fmt::format("{}: {}{}", child.name, child.module->describe(), from),
                    batched_shape(batch_size, shapes[i]), with_thousands(count)});
  }

  Row header{"Layer (name: type)", "Output shape", "Params"};
  size_t w0 = header.layer.size(), w1 = header.shape.size(), w2 = header.params.size();
  for (const Row& r : rows) {
    w0 = std::max(w0, r.layer.size());
    w1 = std::max(w1, r.shape.size());
    w2 = std::max(w2, r.params.size());
  }
  std::string rule(w0 + w1 + w2 + 4, '=');
  std::string thin(w0 + w1 + w2 + 4, '-');
  std::string out = rule + "\n";
  auto line = [&](const Row& r) {
    std::string text =
        fmt::format("{:<{}}  {:<{}}  {:>{}}", r.layer, w0, r.shape, w1, r.params, w2);
    return text.substr(0, text.find_last_not_of(' ') + 1) + "\n";
  };
  out += line(header) + thin + "\n";
  for (const Row& r : rows) out += line(r);
  out += rule + "\n";

  int64_t trainable = model.parameter_count();
  int64_t buffers = model.buffer_count();
  out += fmt::format("Total params: {}\n", with_thousands(trainable));
  out += fmt::format("Trainable params: {}\n", with_thousands(trainable));
  if (buffers > 0)
    out += fmt::format("Buffer elements (not trained): {}\n", with_thousands(buffers));
  out += fmt::format("Parameter memory: {}\n", human_bytes(model.state_bytes()));
  out += fmt::format("Forward FLOPs per sample: {}\n", human_flops(model.flops_per_sample()));
  out += fmt::format("Forward FLOPs per batch of {}: {}\n", batch_size,
                     human_flops(model.flops_per_sample() * batch_size));
  if (planned_peak_bytes)
    out += fmt::format("Planned peak memory: {}\n", human_bytes(*planned_peak_bytes));
  out += rule + "\n";
  return out;
}

}  // namespace gpuml::nn
