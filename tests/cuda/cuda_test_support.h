// What the CUDA tests (label cuda) share: the CUDA backend, or the reason it is not here (then the
// test skips: these tests run where a GPU is, in the GPU check).
//
//   TEST(CudaSomething, Works) { GPUML_NEED_GPU(gpu); ... gpu->name() ... }
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "backend/dispatch.h"

namespace gpuml::testing {

inline Backend* cuda_or_skip_reason(std::string& reason) {
  Backend* gpu = backend_registry().find("cuda");
  if (!gpu) reason = "no CUDA backend: " + backend_registry().cuda_status();
  return gpu;
}

}  // namespace gpuml::testing

// Declares `Backend* var`, the CUDA backend, or skips the test saying why there is none.
#define GPUML_NEED_GPU(var)                                             \
  std::string skip_reason;                                              \
  Backend* var = ::gpuml::testing::cuda_or_skip_reason(skip_reason);    \
  if (!var) GTEST_SKIP() << skip_reason
