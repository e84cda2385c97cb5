// Sequential (torch.nn.Sequential): children run in order. A child's state_dict prefix is its
// index ("0", "1", ...) exactly like PyTorch, or an explicit name ("fc1") when given one.
// A child may name its inputs (earlier children by name, or "input"): then it takes those
// outputs instead of the previous child's, which gives residual branches and concatenations
// (nn/merge.h); without any, this is PyTorch's Sequential.
//
//   Sequential seq;
//   seq.add(std::make_unique<Flatten>());                // child "0"
//   seq.add(std::make_unique<Linear>(784, 10));          // child "1": "1.weight", "1.bias"
//   seq.add("head", std::make_unique<Linear>(10, 10));   // "head.weight", "head.bias"
//   Shape out = seq.output_shape({1, 28, 28});            // (10); errors name the layer index
#pragma once

#include <memory>

#include "nn/module.h"

namespace gpuml::nn {

class Sequential : public Module {
 public:
  struct Child {
    std::string name;
    std::unique_ptr<Module> module;
    std::vector<std::string> inputs;  // empty: the previous child's output (or the input)
  };

  Sequential() = default;
  void add(std::unique_ptr<Module> module);  // named by its index
  // Names must be unique, non-empty and free of '.', since they become state_dict prefixes.
  void add(const std::string& name, std::unique_ptr<Module> module);
  // `inputs`: names of earlier children or "input"; a Merge (Add, Concat) takes two or more,
  // any other module one.
  void add(const std::string& name, std::unique_ptr<Module> module, std::vector<std::string> inputs);

  const std::vector<Child>& children() const { return children_; }
  size_t size() const { return children_.size(); }

  std::string type_name() const override { return "Sequential"; }
  Sym forward(Sym x, ForwardContext& ctx, const std::string& prefix) const override;
  void params(const std::string& prefix, std::vector<ParamInfo>& out) const override;
  void init(const std::string& prefix, ParamInitializer& initializer) const override;
  void ties(const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) const override;
  // Errors are re-thrown as "layer 7 (Linear): <what the layer said>".
  Shape output_shape(const Shape& in) const override;
  int64_t flops(const Shape& in) const override;
  std::string describe() const override;
  nlohmann::json to_json() const override;  // {"type": "Sequential", "layers": [...]}

  // The per-sample output shape after each child, for summaries.
  std::vector<Shape> child_output_shapes(const Shape& in) const;

 private:
  // Runs the children in order, each on its inputs: `apply(child, its input values)` gives the
  // child's value; `in` is the value of "input". Returns each child's value.
  template <typename T, typename Apply>
  std::vector<T> run(const T& in, Apply&& apply) const;

  std::vector<Child> children_;
};

}  // namespace gpuml::nn
