// Reference collectives: all_reduce_sum through the run's communicator (KernelCall::collectives).
// It is the only kernel of the op on a host: a collective is communication, not arithmetic, so
// there is no faster twin to test against it, and plans on the cpu backend place it here (same
// memory, no copy). For small tensors (synchronised BatchNorm's per-channel statistics).
#include <span>

#include "backend/communicator.h"
#include "backend/ref/ref_kernels.h"

namespace gpuml::ref {

namespace {

// Every rank's x as float64 in logical order, gathered from every rank (all_gather) and summed in
// rank order: each rank adds the same numbers in the same order and gets the same bits, which
// a reducing collective does not promise, and f32 inputs are summed without rounding between
// ranks. One process (no communicator): x itself.
void all_reduce_sum_kernel(const KernelCall& c) {
  std::vector<double> mine = load(c.inputs[0]);
  const KernelCollectives* collectives = c.collectives;
  Communicator* comm = collectives != nullptr ? collectives->communicator : nullptr;
  // Every rank runs the same plan, so all skip an empty tensor or none do.
  if (comm == nullptr || comm->world_size() == 1 || mine.empty()) {
    store(c.output, mine);
    return;
  }
  const size_t n = mine.size();
  const size_t ranks = static_cast<size_t>(comm->world_size());
  std::vector<double> all(n * ranks);  // (ranks, n)
  comm->all_gather(std::as_bytes(std::span<const double>(mine)), std::as_writable_bytes(std::span<double>(all)),
                   {"an all_reduce_sum op's values (synchronised BatchNorm statistics)", collectives->timeout});
  std::vector<double> total(n, 0.0);
  for (size_t r = 0; r < ranks; ++r)
    for (size_t i = 0; i < n; ++i) total[i] += all[r * n + i];
  store(c.output, total);
}

}  // namespace

std::vector<KernelEntry> collective_kernels() { return {{OpId::all_reduce_sum, all_reduce_sum_kernel, kFloatDTypes}}; }

}  // namespace gpuml::ref
