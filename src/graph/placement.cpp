#include "graph/placement.h"

#include <string_view>

#include "core/error.h"

namespace gpuml {

namespace {

// The ops whose f32 kernels may run on TF32 tensor cores (PlanOptions::allow_tf32).
bool uses_tensor_cores(OpId op) {
  return op == OpId::matmul || op == OpId::matmul_bias_act || op == OpId::matmul_bgrad ||
         op == OpId::matmul_dact || op == OpId::conv2d || op == OpId::conv2d_bias_act ||
         op == OpId::conv2d_backward_data || op == OpId::conv2d_backward_filter;
}

}  // namespace

OpQuery query_of_node(const Graph& graph, int id) {
  const Node& node = graph.node(id);
  OpQuery q{node.op, {}, node.type, node.attrs};
  for (int in : node.inputs) q.inputs.push_back(graph.type_of(in));
  return q;
}

OpQuery copy_query(const TensorType& type) {
  return OpQuery{OpId::copy, {type}, type, {}};
}

Placement::Placement(const PlanOptions& options)
    : backends_(options.backends),
      allow_tf32_(options.allow_tf32),
      deterministic_(options.deterministic) {
  if (backends_.empty()) backends_ = backend_registry().all();
  GPUML_CHECK(!backends_.empty(), "plan_graph: no backends to place ops on");
}

Attrs Placement::step_attrs(OpId op, Attrs attrs) const {
  attrs.allow_tf32 = allow_tf32_ && uses_tensor_cores(op);
  attrs.deterministic = deterministic_;
  return attrs;
}

Backend* Placement::first_supporting(const OpQuery& query) const {
  OpQuery step = query;
  step.attrs = step_attrs(query.op, query.attrs);
  for (Backend* b : backends_)
    if (b->supports(step)) return b;
  return nullptr;
}

Backend& Placement::place(const OpQuery& query) const {
  if (Backend* b = first_supporting(query)) return *b;
  std::vector<std::string_view> names;
  for (Backend* b : backends_) names.push_back(b->name());
  std::vector<std::string> inputs;
  for (const TensorType& t : query.inputs) inputs.push_back(shape_str(t.shape));
  GPUML_FAIL(ErrorKind::Unsupported,
             "plan_graph: no backend among [{}] has a {} kernel for {} inputs {}",
             fmt::join(names, ", "), op_name(query.op),
             dispatch_dtype_of(query.op, query.inputs, query.output), fmt::join(inputs, ", "));
}

bool Placement::fuses_in_place(const OpQuery& fused, const OpQuery& unfused) const {
  Backend* b = first_supporting(fused);
  return b != nullptr && b == first_supporting(unfused);
}

Backend* Placement::copier_on(const Device& device, const TensorType& type) const {
  const OpQuery copy = copy_query(type);
  for (Backend* b : backends_)
    if (b->device() == device && b->supports(copy)) return b;
  return nullptr;
}

Backend* Placement::allocator_of(const Device& device) const {
  for (Backend* b : backends_)
    if (b->device() == device) return b;
  return nullptr;
}

}  // namespace gpuml
