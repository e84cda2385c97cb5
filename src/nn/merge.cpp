#include "nn/merge.h"

#include <nlohmann/json.hpp>

#include "ops/build.h"

namespace gpuml::nn {

Sym Merge::forward(Sym, ForwardContext&, const std::string&) const {
  GPUML_FAIL(ErrorKind::Invalid, "{} combines earlier outputs: give it \"inputs\", e.g. [\"a\", \"b\"]", type_name());
}

namespace {

void check_count(const std::string& type, size_t n) {
  GPUML_CHECK(n >= 2, "{} needs two or more inputs (its \"inputs\" field), got {}", type, n);
}

}  // namespace

Shape Add::merged_shape(const std::vector<Shape>& in) const {
  check_count("Add", in.size());
  for (size_t i = 1; i < in.size(); ++i)
    GPUML_CHECK_SHAPE(in[i] == in[0], "Add: input {} has shape {} but input 0 has {} (Add takes equal shapes)", i,
                      shape_str(in[i]), shape_str(in[0]));
  return in[0];
}

Sym Add::merge(const std::vector<Sym>& xs, ForwardContext&) const {
  check_count("Add", xs.size());
  Sym sum = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) sum = add(sum, xs[i]);
  return sum;
}

Concat::Concat(int64_t dim) : dim_(dim) {
  GPUML_CHECK(dim != 0, "Concat: dim 0 is the batch; join along dim 1 or later");
}

int64_t Concat::axis(size_t rank) const {
  const int64_t r = static_cast<int64_t>(rank);  // per-sample rank; batched rank is r + 1
  const int64_t batched = dim_ < 0 ? dim_ + r + 1 : dim_;
  GPUML_CHECK(batched >= 1 && batched <= r, "Concat: dim {} is outside 1..{} for samples of {} dims", dim_, r, r);
  return batched - 1;
}

Shape Concat::merged_shape(const std::vector<Shape>& in) const {
  check_count("Concat", in.size());
  const int64_t a = axis(in[0].size());
  Shape out = in[0];
  for (size_t i = 1; i < in.size(); ++i) {
    GPUML_CHECK_SHAPE(in[i].size() == in[0].size(), "Concat: input {} has shape {} but input 0 has {}", i,
                      shape_str(in[i]), shape_str(in[0]));
    for (size_t d = 0; d < in[0].size(); ++d)
      if (static_cast<int64_t>(d) != a)
        GPUML_CHECK_SHAPE(in[i][d] == in[0][d], "Concat: input {} has shape {} but input 0 has {} (only dim {} may differ)",
                          i, shape_str(in[i]), shape_str(in[0]), dim_);
    out[a] += in[i][a];
  }
  return out;
}

Sym Concat::merge(const std::vector<Sym>& xs, ForwardContext&) const {
  check_count("Concat", xs.size());
  return concat(xs, axis(xs[0].shape().size() - 1) + 1);
}

std::string Concat::describe() const { return fmt::format("Concat(dim={})", dim_); }

nlohmann::json Concat::to_json() const {
  nlohmann::json j = Module::to_json();
  j["dim"] = dim_;
  return j;
}

}  // namespace gpuml::nn
