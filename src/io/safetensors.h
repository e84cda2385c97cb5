// safetensors files (https://github.com/huggingface/safetensors), exactly as the spec says:
// an 8-byte little-endian u64 N, N bytes of UTF-8 JSON header padded with spaces to a multiple
// of 8, then the tensors' bytes, tightly packed, logical row-major, little-endian.
//
//   save_safetensors("model.safetensors", {{"fc1.weight", w}, {"fc1.bias", b}},
//                    {{"format", "pt"}});
//   SafetensorsFile f = load_safetensors("model.safetensors");
//   const Tensor& w = f.at("fc1.weight");         // host, contiguous
//   for (const auto& [name, t] : f.tensors) ...  // in file (data offset) order
//
// Order: the writer lays tensors out in the order given (insertion order), both in the JSON
// header and in the data section; it does not sort. The header JSON is compact, with
// "__metadata__" first when there is metadata, then each tensor as
// {"dtype":..,"shape":[..],"data_offsets":[begin,end]}. The reader returns tensors ordered by
// their data offsets, so a file written here reads back in the order it was written.
//
// The reader trusts nothing: every size is checked against the file before it is used, the
// data section must be indexed completely (no gaps, overlaps or trailing bytes, as the spec
// requires), and every error names the file and the tensor. Errors are ErrorKind::Io for
// unreadable/truncated files and ErrorKind::Invalid for malformed contents. Unknown keys inside
// a tensor entry are ignored, as the reference implementation does.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gpuml {

// The header size the reference implementation accepts at most (it guards against a hostile
// N making the reader allocate gigabytes for a "header").
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  NamedTensors tensors;  // host, contiguous, in data offset order
  SafetensorsMetadata metadata;

  bool contains(std::string_view name) const;
  // Throws ErrorKind::Invalid naming the missing tensor.
  const Tensor& at(std::string_view name) const;
};

// Tensors must be on the host; any strides are fine (the logical row-major values are written).
// Names must be unique, non-empty and not "__metadata__". Written with write_file_atomically.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata = {});
SafetensorsFile load_safetensors(const std::filesystem::path& path);

// The spec's dtype names ("F32", "BF16", "BOOL", ...).
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace gpuml
