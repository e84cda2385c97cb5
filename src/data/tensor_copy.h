// A contiguous host copy of any (strided) host tensor, for readers that build views (the
// Fortran-order transpose of NPY) and for the loader, which gathers rows from contiguous memory.
//
//   Tensor c = data::contiguous_copy(t.transpose(0, 1));   // same shape, row-major storage
#pragma once

#include "core/tensor.h"

namespace gpuml::data {

// Returns `t` itself when it is already contiguous and `always_copy` is false.
Tensor contiguous_copy(const Tensor& t, bool always_copy = false);

}  // namespace gpuml::data
