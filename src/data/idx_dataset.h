// Finds and reads the four files of an MNIST-style dataset directory (MNIST, Fashion-MNIST):
// train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each plain or with a .gz suffix.
//
//   data::IdxDataset ds = data::load_idx_dataset("/usr/share/datasets/fashion-mnist");
//   // ds.train_x (60000, 28, 28) u8, ds.train_y (60000,) u8, ds.test_x, ds.test_y
//
// Images stay u8 (N, H, W); the loader scales, normalises and reshapes them to (N, 1, H, W).
#pragma once

#include <string>

#include "core/tensor.h"

namespace gpuml::data {

struct IdxDataset {
  Tensor train_x;  // (N, H, W) u8
  Tensor train_y;  // (N,) u8
  Tensor test_x;   // (M, H, W) u8
  Tensor test_y;   // (M,) u8
};

// Throws an Io error listing every missing file, and a Shape error when images and labels disagree.
IdxDataset load_idx_dataset(const std::string& dir);

}  // namespace gpuml::data
