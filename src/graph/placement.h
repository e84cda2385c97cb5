// Placement: which backend runs a step. Backends are asked in order of preference and the first
// that supports the op runs it; an op nobody supports is an Unsupported error naming them all.
// The planner (graph/planner.cpp) places every kernel step here, the fusion passes ask whether a
// fused kernel would run where the unfused op would, and arena packing asks which backend
// allocates a device's arena.
//
//   Placement placement({});                          // registry order (cuda, cpu, ref)
//   Backend& b = placement.place(OpId::matmul, DType::f32);
#pragma once

#include <vector>

#include "backend/backend.h"

namespace gpuml {

class Placement {
 public:
  // `backends` in order of preference; empty: backend_registry().all().
  explicit Placement(std::vector<Backend*> backends);

  const std::vector<Backend*>& backends() const { return backends_; }
  // The first backend with a kernel for (op, dtype), or nullptr.
  Backend* first_supporting(OpId op, DType dtype) const;
  // The first backend with a kernel for (op, dtype); throws Unsupported if none has one.
  Backend& place(OpId op, DType dtype) const;
  // Whether `fused` runs on the backend that would run the unfused `op`: fusing must not move
  // work to another backend (and through transfers, to another device).
  bool fuses_in_place(OpId fused, OpId op, DType dtype) const;
  // The first backend on `device` that can copy `dtype` (to make a strided value contiguous
  // before it leaves the device), or nullptr.
  Backend* copier_on(const Device& device, DType dtype) const;
  // The first backend on `device`: the one that allocates that device's arena.
  Backend* allocator_of(const Device& device) const;

 private:
  std::vector<Backend*> backends_;
};

}  // namespace gpuml
