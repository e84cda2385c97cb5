// Weights exchange with NumPy and PyTorch: model tensors by their PyTorch state_dict names, as an
// NPZ archive (numpy.savez layout: one "<name>.npy" member per tensor) or a safetensors file.
//
//   save_npz_weights("weights.npz", runner.model_tensors());
//   // Python: w = numpy.load("weights.npz"); model.load_state_dict({k: torch.from_numpy(w[k]) ...})
//   NamedTensors w = load_weights_file("model.safetensors");   // or "weights.npz"
//   runner.load(w, {});                                        // errors name missing/extra/mis-shaped
//
// The NPZ is built in memory and written with write_file_atomically, so a failed export leaves no
// partial file. Reading goes through the validating readers (data/npz.h, io/safetensors.h).
#pragma once

#include <filesystem>

#include "io/safetensors.h"
#include "nn/module.h"

namespace gpuml::interop {

// Host tensors (any strides) -> an uncompressed NPZ; names must be unique and non-empty.
void save_npz_weights(const std::filesystem::path& path, const NamedTensors& tensors);

// A ".safetensors" or ".npz" file, tensors in file order. Other extensions are ErrorKind::Invalid.
NamedTensors load_weights_file(const std::filesystem::path& path);

// Every entry of `infos` present with its exact shape, nothing else: throws ErrorKind::Invalid
// listing all missing and unexpected names, or ErrorKind::Shape naming the first mis-shaped one.
void check_weights_fit(const std::vector<nn::ParamInfo>& infos, const NamedTensors& weights);

}  // namespace gpuml::interop
