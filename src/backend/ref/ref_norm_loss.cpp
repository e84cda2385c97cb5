// Reference cross-entropy, layer norm and batch norm, with their backward ops.
// Layer norm and batch norm are the same computation over different groups of elements, so both
// are written once over NormGroups.
#include <cmath>
#include <limits>

#include "backend/ref/ref_kernels.h"

namespace gpuml::ref {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// --- cross entropy ----------------------------------------------------------------------------

// The label of each row as an index; -1 marks an ignored row. Labels outside [0, C) are errors.
std::vector<int64_t> checked_labels(const Tensor& labels, int64_t classes, int64_t ignore_index,
                                    const char* op) {
  std::vector<double> raw = load(labels);
  std::vector<int64_t> out(raw.size());
  for (size_t row = 0; row < raw.size(); ++row) {
    int64_t label = static_cast<int64_t>(raw[row]);
    if (label == ignore_index) {
      out[row] = -1;
      continue;
    }
    GPUML_CHECK(label >= 0 && label < classes,
                "{}: row {} has label {}, outside [0, {}) and not the ignore_index {}", op, row, label,
                classes, ignore_index);
    out[row] = label;
  }
  return out;
}

// log(sum(exp(row))), stable.
double log_sum_exp(const double* row, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, row[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(row[j] - m);
  return m + std::log(sum);
}

// cross_entropy(logits (N, C), labels (N,)) -> (loss (): the mean over kept rows of
// -log_softmax[label], lse (N,): each row's log-sum-exp, ignored rows too; the backward reads it).
void cross_entropy_kernel(const KernelCall& c) {
  const int64_t rows = c.inputs[0].dim(0), classes = c.inputs[0].dim(1);
  std::vector<double> logits = load(c.inputs[0]);  // (N, C)
  std::vector<int64_t> labels = checked_labels(c.inputs[1], classes, c.attrs.ignore_index, "cross_entropy");
  std::vector<double> lse(static_cast<size_t>(rows));  // (N,)
  double total = 0.0;
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = &logits[r * classes];
    lse[r] = log_sum_exp(row, classes);
    if (labels[r] < 0) continue;
    total += lse[r] - row[labels[r]];
    ++kept;
  }
  store(c.output, std::vector<double>{kept == 0 ? kNaN : total / static_cast<double>(kept)});
  store(c.extra_outputs[0], lse);
}

// cross_entropy_backward(logits (N, C), labels (N,), dloss (), lse (N,)) -> dlogits (N, C):
// (exp(logits - lse) - onehot) * dloss / kept_rows on kept rows, 0 on ignored rows, with the
// log-sum-exp cross_entropy kept.
void cross_entropy_backward_kernel(const KernelCall& c) {
  const int64_t rows = c.inputs[0].dim(0), classes = c.inputs[0].dim(1);
  std::vector<double> logits = load(c.inputs[0]);  // (N, C)
  std::vector<int64_t> labels =
      checked_labels(c.inputs[1], classes, c.attrs.ignore_index, "cross_entropy_backward");
  const double dloss = load(c.inputs[2])[0];
  const std::vector<double> lse = load(c.inputs[3]);  // (N,)
  int64_t kept = 0;
  for (int64_t label : labels) kept += label >= 0;
  std::vector<double> grad(logits.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] < 0) continue;
    const double* row = &logits[r * classes];
    for (int64_t j = 0; j < classes; ++j) {
      double softmax = std::exp(row[j] - lse[r]);
      double onehot = j == labels[r] ? 1.0 : 0.0;
      grad[r * classes + j] = (softmax - onehot) * dloss / static_cast<double>(kept);
    }
  }
  store(c.output, grad);
}

// --- normalisation ----------------------------------------------------------------------------

// Which statistics group each element of x (row-major) belongs to, and which weight/bias element
// scales it.
struct NormGroups {
  int64_t count = 0;
  std::vector<int64_t> group, param;
};

// layer_norm: one group per row of the dims before `axis`; parameters index the normalised dims.
NormGroups layer_norm_groups(const Shape& shape, int64_t attr_axis) {
  int axis = normalize_axis(attr_axis, static_cast<int>(shape.size()), "layer_norm");
  const int64_t inner = dims_product(shape, axis, static_cast<int64_t>(shape.size()));
  NormGroups g;
  g.count = dims_product(shape, 0, axis);
  for (int64_t i = 0; i < numel(shape); ++i) {
    g.group.push_back(i / inner);
    g.param.push_back(i % inner);
  }
  return g;
}

// batch_norm: x (N, C, ...) has one group per channel, over N and all trailing dims.
NormGroups batch_norm_groups(const Shape& shape) {
  const int64_t channels = shape[1];
  const int64_t spatial = dims_product(shape, 2, static_cast<int64_t>(shape.size()));
  NormGroups g;
  g.count = channels;
  for (int64_t i = 0; i < numel(shape); ++i) {
    int64_t channel = (i / spatial) % channels;
    g.group.push_back(channel);
    g.param.push_back(channel);
  }
  return g;
}

// Per-group mean and biased variance (two passes). An empty group has NaN statistics.
void group_stats(const std::vector<double>& x, const NormGroups& g, std::vector<double>& mean,
                 std::vector<double>& var) {
  std::vector<double> count(g.count, 0.0);
  mean.assign(g.count, 0.0);
  var.assign(g.count, 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    mean[g.group[i]] += x[i];
    count[g.group[i]] += 1.0;
  }
  for (int64_t k = 0; k < g.count; ++k) mean[k] /= count[k];
  for (size_t i = 0; i < x.size(); ++i) {
    double d = x[i] - mean[g.group[i]];
    var[g.group[i]] += d * d;
  }
  for (int64_t k = 0; k < g.count; ++k) var[k] /= count[k];
}

// y = (x - mean) * rsqrt(var + eps) * w + b
std::vector<double> normalize(const std::vector<double>& x, const NormGroups& g,
                              const std::vector<double>& mean, const std::vector<double>& var,
                              const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t k = g.group[i], p = g.param[i];
    y[i] = (x[i] - mean[k]) / std::sqrt(var[k] + eps) * w[p] + b[p];
  }
  return y;
}

// 1 / sqrt(var + eps) per group.
std::vector<double> reciprocal_std(const std::vector<double>& var, double eps) {
  std::vector<double> rstd(var.size());
  for (size_t k = 0; k < var.size(); ++k) rstd[k] = 1.0 / std::sqrt(var[k] + eps);
  return rstd;
}

// dx of y = normalize(x) with the group statistics (mean, rstd) the forward used, through them:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w,  xhat = (x - mean) * rstd
std::vector<double> normalize_backward(const std::vector<double>& x, const std::vector<double>& w,
                                       const std::vector<double>& dy, const NormGroups& g,
                                       const std::vector<double>& mean, const std::vector<double>& rstd) {
  std::vector<double> mean_g(g.count, 0.0), mean_gx(g.count, 0.0), count(g.count, 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t k = g.group[i];
    double grad = dy[i] * w[g.param[i]];
    double xhat = (x[i] - mean[k]) * rstd[k];
    mean_g[k] += grad;
    mean_gx[k] += grad * xhat;
    count[k] += 1.0;
  }
  for (int64_t k = 0; k < g.count; ++k) {
    mean_g[k] /= count[k];
    mean_gx[k] /= count[k];
  }
  std::vector<double> dx(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t k = g.group[i];
    double grad = dy[i] * w[g.param[i]];
    double xhat = (x[i] - mean[k]) * rstd[k];
    dx[i] = rstd[k] * (grad - mean_g[k] - xhat * mean_gx[k]);
  }
  return dx;
}

// layer_norm(x, w, b) -> (y, mean, rstd): normalise over dims attrs.axis..last; each row's mean
// and 1 / sqrt(var + eps) are outputs 1 and 2 (the backward reads them).
void layer_norm_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]);
  NormGroups g = layer_norm_groups(c.inputs[0].shape(), c.attrs.axis);
  std::vector<double> mean, var;
  group_stats(x, g, mean, var);
  store(c.output, normalize(x, g, mean, var, load(c.inputs[1]), load(c.inputs[2]), c.attrs.eps));
  store(c.extra_outputs[0], mean);
  store(c.extra_outputs[1], reciprocal_std(var, c.attrs.eps));
}

// layer_norm_backward(x, w, dy, mean, rstd) -> (dx, dw, db), with the statistics layer_norm kept:
// dw = sum over rows of dy * xhat, db = sum over rows of dy.
void layer_norm_backward_kernel(const KernelCall& c) {
  NormGroups g = layer_norm_groups(c.inputs[0].shape(), c.attrs.axis);
  const std::vector<double> x = load(c.inputs[0]), dy = load(c.inputs[2]), mean = load(c.inputs[3]),
                            rstd = load(c.inputs[4]);
  store(c.output, normalize_backward(x, load(c.inputs[1]), dy, g, mean, rstd));
  std::vector<double> dw(static_cast<size_t>(c.inputs[1].numel()), 0.0), db(dw.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t k = g.group[i], p = g.param[i];
    dw[p] += dy[i] * (x[i] - mean[k]) * rstd[k];
    db[p] += dy[i];
  }
  store(c.extra_outputs[0], dw);
  store(c.extra_outputs[1], db);
}

// batch_norm(x (N, C, ...), w (C,), b (C,), running_mean (C,), running_var (C,)): batch statistics
// when training, else the running ones. The running statistics are not updated here.
void batch_norm_kernel(const KernelCall& c) {
  std::vector<double> x = load(c.inputs[0]);
  NormGroups g = batch_norm_groups(c.inputs[0].shape());
  std::vector<double> mean, var;
  if (c.attrs.training) {
    group_stats(x, g, mean, var);
  } else {
    mean = load(c.inputs[3]);
    var = load(c.inputs[4]);
  }
  store(c.output, normalize(x, g, mean, var, load(c.inputs[1]), load(c.inputs[2]), c.attrs.eps));
}

// batch_norm_backward(x, w, dy) -> dx, training mode (batch statistics).
void batch_norm_backward_kernel(const KernelCall& c) {
  NormGroups g = batch_norm_groups(c.inputs[0].shape());
  std::vector<double> x = load(c.inputs[0]), mean, var;
  group_stats(x, g, mean, var);
  store(c.output, normalize_backward(x, load(c.inputs[1]), load(c.inputs[2]), g, mean, reciprocal_std(var, c.attrs.eps)));
}

}  // namespace

std::vector<KernelEntry> norm_loss_kernels() {
  return {
      {OpId::cross_entropy, cross_entropy_kernel, kFloatDTypes},
      {OpId::cross_entropy_backward, cross_entropy_backward_kernel, kFloatDTypes},
      {OpId::layer_norm, layer_norm_kernel, kFloatDTypes},
      {OpId::layer_norm_backward, layer_norm_backward_kernel, kFloatDTypes},
      {OpId::batch_norm, batch_norm_kernel, kFloatDTypes},
      {OpId::batch_norm_backward, batch_norm_backward_kernel, kFloatDTypes},
  };
}

}  // namespace gpuml::ref
