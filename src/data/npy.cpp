#include "data/npy.h"

#include <bit>

#include "data/atomic_file.h"
#include "data/byte_source.h"
#include "data/npy_format.h"
#include "data/tensor_copy.h"

namespace gpuml::data {

Tensor read_npy(const std::string& path) {
  std::unique_ptr<ByteSource> src = open_plain_source(path);
  NpyPreamble pre = read_npy_preamble(*src, src->stored_size());
  return read_npy_payload(*src, pre);
}

void write_npy(const std::string& path, const Tensor& tensor) {
  GPUML_CHECK(tensor.defined(), "write_npy {}: undefined tensor", path);
  GPUML_CHECK(tensor.device().is_host(), "write_npy {}: copy the {} tensor to the host first", path,
              tensor.device().str());
  std::string preamble = npy_v1_preamble(tensor.dtype(), tensor.shape());
  Tensor body = contiguous_copy(tensor);
  if constexpr (std::endian::native != std::endian::little) {
    GPUML_FAIL(ErrorKind::Unsupported, "write_npy {}: big-endian hosts are not supported", path);
  }
  AtomicFile out(path);
  out.write(preamble.data(), preamble.size());
  if (body.numel() > 0) out.write(body.raw_data(), body.nbytes());
  out.commit();
}

}  // namespace gpuml::data
