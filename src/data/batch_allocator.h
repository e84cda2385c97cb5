// Host memory for the loaders' batches, recycled: the buffer of a batch the trainer has finished
// with becomes the next batch's. Fresh 400 KiB blocks from malloc came back from the kernel each
// time (glibc trims a thread arena's heap as soon as its top is free), so every batch paid its
// page faults and zeroing: on the 8 GiB streaming run that was 40% of the assembler thread's CPU,
// all of it system time (BENCHMARKS.md, issue 5).
#pragma once

#include "core/storage.h"

namespace gpuml::data {

// Process-wide and thread-safe; keeps at most 64 MiB of free blocks, by exact size (a loader's
// batches share one size, the last of an epoch aside).
Allocator& batch_allocator();

}  // namespace gpuml::data
