#include "nn/embedding.h"

#include <nlohmann/json.hpp>

namespace gpuml::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, double init_std)
    : num_(num_embeddings), dim_(embedding_dim), init_std_(init_std) {
  GPUML_CHECK(init_std_ > 0 && init_std_ < 1e30, "Embedding: init_std must be > 0, got {}", init_std_);
  GPUML_CHECK(num_ > 0 && dim_ > 0, "Embedding: num_embeddings {} and embedding_dim {} must be > 0",
              num_, dim_);
}

Sym Embedding::forward(Sym x, ForwardContext& ctx, const std::string& prefix) const {
  Sym weight = ctx.get(join_name(prefix, "weight"), {num_, dim_});  // (V, D)
  Sym indices = x.dtype() == DType::i64 || x.dtype() == DType::i32 ? x : cast(x, DType::i64);
  return embedding(weight, indices);
}

void Embedding::params(const std::string& prefix, std::vector<ParamInfo>& out) const {
  out.push_back({join_name(prefix, "weight"), {num_, dim_}});
}

void Embedding::init(const std::string& prefix, ParamInitializer& initializer) const {
  initializer.normal(join_name(prefix, "weight"), {num_, dim_}, 0.0, init_std_);
}

Shape Embedding::output_shape(const Shape& in) const {
  Shape out = in;
  out.push_back(dim_);
  return out;
}

std::string Embedding::describe() const {
  return fmt::format("Embedding({}, {})", num_, dim_);
}

nlohmann::json Embedding::to_json() const {
  nlohmann::json j = Module::to_json();
  j["num_embeddings"] = num_;
  j["embedding_dim"] = dim_;
  if (init_std_ != 1.0) j["init_std"] = init_std_;
  return j;
}

}  // namespace gpuml::nn
