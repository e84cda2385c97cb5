#include "backend/dispatch.h"

#include <array>

#include "core/error.h"

namespace gpuml {

TensorType type_of(const Tensor& t) { return {t.shape(), t.dtype()}; }

Tensor contiguous(const Tensor& t, Backend& backend) {
  if (t.is_contiguous()) return t;
  return run_op(backend, OpId::copy, {t});
}

std::vector<Tensor> run_op_outputs(Backend& backend, OpId op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  std::vector<TensorType> types;
  for (const Tensor& t : inputs) {
    GPUML_CHECK(t.defined(), "{}: undefined input tensor", op_name(op));
    GPUML_CHECK(t.device() == backend.device(), "{}: input on {} but backend '{}' runs on {}", op_name(op),
                t.device().str(), backend.name(), backend.device().str());
    types.push_back(type_of(t));
  }
  std::vector<Tensor> outputs;
  for (const TensorType& t : infer_types(op, types, attrs)) outputs.push_back(Tensor::empty(t.shape, t.dtype, backend));
  std::vector<Tensor> args = inputs;
  if (!backend.accepts_strided_inputs(op))
    for (Tensor& t : args)
      if (!t.is_contiguous()) t = run_op(backend, OpId::copy, {t});
  KernelCall call{backend, args, outputs[0], attrs, nullptr};
  call.extra_outputs = std::span<const Tensor>(outputs).subspan(1);
  backend.run(op, call);
  backend.synchronize();
  backend.check_deferred_errors();
  return outputs;
}

Tensor run_op(Backend& backend, OpId op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  GPUML_CHECK_KIND(ErrorKind::Internal, op_info(op).outputs == 1, "{} has {} outputs: call run_op_outputs",
                   op_name(op), op_info(op).outputs);
  return run_op_outputs(backend, op, inputs, attrs)[0];
}

void matmul_bgrad_by_parts(const KernelCall& call) {
  call.backend.run(OpId::matmul, KernelCall{call.backend, call.inputs, call.output, call.attrs, call.stream});
  Attrs rows;
  rows.axes = {0};
  const Tensor& g = call.inputs[call.attrs.axis];
  call.backend.run(OpId::sum,
                   KernelCall{call.backend, std::span<const Tensor>(&g, 1), call.extra_outputs[0], rows, call.stream});
}

void matmul_dact_by_parts(const KernelCall& call) {
  call.backend.run(OpId::matmul, KernelCall{call.backend, call.inputs.first(2), call.output, call.attrs, call.stream});
  // In place: the backward reads the product and the aux element by element and writes each
  // result over the product's element.
  const std::array<Tensor, 2> args{call.inputs[2], call.output};
  const OpId backward = call.attrs.activation == Activation::relu ? OpId::relu_backward : OpId::gelu_backward;
  call.backend.run(backward, KernelCall{call.backend, args, call.output, call.attrs, call.stream});
}

Tensor to_backend(const Tensor& t, Backend& backend) {
  Tensor src = t;
  if (!src.is_contiguous()) {
    // Make it contiguous where it lives: on the host directly, else on a backend of its device.
    Backend* owner = nullptr;
    for (Backend* b : backend_registry().loaded())  // the tensor's own backend is loaded
      if (b->device() == t.device() && b->supports(OpId::copy, t.dtype())) owner = b;
    GPUML_CHECK(owner != nullptr, "no backend can copy a {} tensor on {}", t.dtype(), t.device().str());
    src = run_op(*owner, OpId::copy, {t});
  }
  Tensor out = Tensor::empty(src.shape(), src.dtype(), backend);
  if (src.device() == backend.device()) {
    backend.copy_within(out.raw_data(), src.raw_data(), src.nbytes());
  } else if (src.device().is_host()) {
    backend.copy_to_device(out.raw_data(), src.raw_data(), src.nbytes());
  } else {
    // Device -> host or device -> other device: go through the owning backend.
    Backend* owner = nullptr;
    for (Backend* b : backend_registry().loaded())  // the tensor's own backend is loaded
      if (b->device() == src.device()) owner = b;
    GPUML_CHECK(owner != nullptr, "no backend owns device {}", src.device().str());
    if (backend.device().is_host()) {
      owner->copy_to_host(out.raw_data(), src.raw_data(), src.nbytes());
      owner->synchronize();
    } else {
      Tensor host = to_backend(src, backend_registry().reference());
      backend.copy_to_device(out.raw_data(), host.raw_data(), host.nbytes());
    }
  }
  backend.synchronize();
  return out;
}

}  // namespace gpuml
