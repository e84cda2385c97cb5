#include "backend/dispatch.h"

#include <array>

#include "core/error.h"

namespace gpuml {

TensorType type_of(const Tensor& t) { return {t.shape(), t.dtype()}; }

Tensor contiguous(const Tensor& t, Backend& backend) {
  if (t.is_contiguous()) return t;
  return run_op(backend, OpId::copy, {t});
}

Tensor run_op(Backend& backend, OpId op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  std::vector<TensorType> types;
  for (const Tensor& t : inputs) {
    GPUML_CHECK(t.defined(), "{}: undefined input tensor", op_name(op));
    GPUML_CHECK(t.device() == backend.device(), "{}: input on {} but backend '{}' runs on {}", op_name(op),
                t.device().str(), backend.name(), backend.device().str());
    types.push_back(type_of(t));
  }
  TensorType out_type = infer_type(op, types, attrs);
  std::vector<Tensor> args = inputs;
  if (!backend.accepts_strided_inputs(op))
    for (Tensor& t : args)
      if (!t.is_contiguous()) t = run_op(backend, OpId::copy, {t});
  Tensor out = Tensor::empty(out_type.shape, out_type.dtype, backend);
  backend.run(op, KernelCall{backend, args, out, attrs, nullptr});
  backend.synchronize();
  backend.check_deferred_errors();
  return out;
}

void matmul_bgrad_by_parts(const KernelCall& call) {
  const MatmulDims d = matmul_dims(call.inputs[0].shape(), call.inputs[1].shape(), call.attrs);
  const int64_t product = d.m * d.n;
  Tensor weight_grad = call.output.slice(0, 0, product).reshape({d.m, d.n});
  Tensor bias_grad = call.output.slice(0, product, call.output.numel());
  call.backend.run(OpId::matmul, KernelCall{call.backend, call.inputs, weight_grad, call.attrs, call.stream});
  Attrs rows;
  rows.axes = {0};
  const Tensor& g = call.inputs[call.attrs.axis];
  call.backend.run(OpId::sum, KernelCall{call.backend, std::span<const Tensor>(&g, 1), bias_grad, rows, call.stream});
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
