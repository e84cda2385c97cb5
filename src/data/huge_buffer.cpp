#include "data/huge_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace gpuml::data {

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kMinHuge = size_t{64} << 20;
}

HugeBuffer::~HugeBuffer() { release(); }

void HugeBuffer::release() {
  if (base_) ::munmap(base_, mapped_);
  base_ = nullptr;
  data_ = nullptr;
  size_ = mapped_ = 0;
}

void HugeBuffer::reserve(size_t bytes, bool huge_pages, bool populate) {
  if (bytes <= size_) return;
  release();
  // Huge pages only where the buffer is large: a 2 MiB page under a small buffer would be
  // resident memory the loader did not budget for.
  huge_pages = huge_pages && bytes >= kMinHuge;
  const size_t align = huge_pages ? kHugePage : kPage;
  const size_t rounded = (bytes + align - 1) / align * align;
  // One alignment unit more than needed, so that the buffer can start on a 2 MiB boundary; the
  // untouched slack costs address space only.
  const size_t mapped = rounded + kHugePage;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  GPUML_CHECK_KIND(ErrorKind::OutOfMemory, p != MAP_FAILED, "cannot map {} bytes for the data loader's buffers: {}",
                   mapped, std::strerror(errno));
  base_ = p;
  mapped_ = mapped;
  const auto start = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) / kHugePage * kHugePage;
  data_ = reinterpret_cast<uint8_t*>(start);
  size_ = rounded;
#ifdef MADV_HUGEPAGE
  if (huge_pages) (void)::madvise(data_, size_, MADV_HUGEPAGE);  // advice only: without THP, 4 KiB pages
#else
  (void)huge_pages;
#endif
  if (populate) {
#ifdef MADV_POPULATE_WRITE
    if (::madvise(data_, size_, MADV_POPULATE_WRITE) == 0) return;  // Linux 5.14+
#endif
    for (size_t page = 0; page < size_; page += kPage) data_[page] = 0;
  }
}

}  // namespace gpuml::data
