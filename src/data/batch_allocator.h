// Host memory for the loaders' batches, recycled: the buffer of a batch the trainer has finished
// with becomes the next batch's. Fresh 400 KiB blocks from malloc came back from the kernel each
// time (glibc trims a thread arena's heap as soon as its top is free), so every batch paid its
// page faults and zeroing (BENCHMARKS.md, issue 5).
//
// Training on a GPU, the trainer makes the blocks come from the device's pinned host allocator
// (set_batch_memory): a batch is then staged in page-locked memory as it is built, and its copy
// to the device is a DMA straight from it. Pinned allocations are slow, which recycling hides.
#pragma once

#include "core/storage.h"

namespace gpuml::data {

// Process-wide and thread-safe; keeps at most 64 MiB of free blocks, by exact size (a loader's
// batches share one size, the last of an epoch aside).
Allocator& batch_allocator();

// Where new batch blocks come from: `upstream`, or plain host memory for nullptr. A block always
// goes back to the allocator it came from, whenever it is freed.
void set_batch_memory(Allocator* upstream);

}  // namespace gpuml::data
