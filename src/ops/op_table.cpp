#include "ops/op_table.h"

#include "core/error.h"

namespace gpuml {

static_assert(draws_philox(OpId::dropout) && draws_philox(OpId::uniform) && draws_philox(OpId::attention) &&
                  draws_philox(OpId::attention_backward) && !draws_philox(OpId::slice) && !draws_philox(OpId::softmax),
              "draws_philox reads `seed offset` in an op's attributes");

OpId op_from_name(std::string_view name) {
  for (int i = 0; i < kNumOps; ++i)
    if (kOpInfos[i].name == name) return static_cast<OpId>(i);
  GPUML_FAIL(ErrorKind::Invalid, "unknown op '{}'", name);
}

std::string_view op_kind_name(OpKind kind) {
  static constexpr std::string_view names[] = {"unary",  "binary",   "compare", "ternary", "reduce",
                                               "softmax", "matmul",  "conv",    "pool",    "loss",
                                               "norm",    "backward", "random", "gather",  "movement",
                                               "creation", "optimizer", "attention", "collective"};
  return names[static_cast<int>(kind)];
}

}  // namespace gpuml
