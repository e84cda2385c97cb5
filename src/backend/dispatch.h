// Eager calls: run one op on one backend now, outside any graph. Used by tests, by the executor
// for explicit copies, and by anyone who wants a single op without building a graph.
//
//   Tensor y = run_op(backend_registry().get("cpu"), OpId::add, {a, b});
//   std::vector<Tensor> dw_db = run_op_outputs(cpu, OpId::matmul_bgrad, {g, x}, attrs);
//   Tensor h = to_backend(y, backend_registry().get("ref"));
#pragma once

#include <vector>

#include "backend/backend.h"
#include "ops/type_rules.h"

namespace gpuml {

// Infers the output type, allocates it on `backend`, makes inputs contiguous if the kernel
// needs that, runs the kernel and synchronizes. For a one-output op.
Tensor run_op(Backend& backend, OpId op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});
// The same for an op with any number of outputs (matmul_bgrad: the weight and bias gradients).
std::vector<Tensor> run_op_outputs(Backend& backend, OpId op, const std::vector<Tensor>& inputs,
                                   const Attrs& attrs = {});

// A contiguous copy of `t` in `backend`'s memory (host <-> device as needed).
Tensor to_backend(const Tensor& t, Backend& backend);

// matmul_bgrad as its two parts, the backend's own matmul and sum kernels writing its two
// outputs: for backends without a fused kernel (and cuBLASLt without a BGRAD
// algorithm for the shape), so that fused and unfused plans compute the same numbers.
void matmul_bgrad_by_parts(const KernelCall& call);

// matmul_dact as its two parts: the backend's matmul into the output, then its relu_backward or
// gelu_backward over the output in place (the same numbers as the unfused plan).
void matmul_dact_by_parts(const KernelCall& call);

// A contiguous copy of `t` on its own backend.
Tensor contiguous(const Tensor& t, Backend& backend);

TensorType type_of(const Tensor& t);

}  // namespace gpuml
