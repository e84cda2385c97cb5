// PNG and JPEG inputs for `gpuml predict`: one image file, or a directory of them, made into
// the model's input exactly as `gpuml data pack` makes an image folder into training records:
// converted to the model's channels (gray or RGB, data/image_codec.h), resized bilinearly to its
// height and width, laid out (C, H, W) as u8 pixels: the caller scales them to [0, 1] by the one
// input rule of train/task.h, like every u8 training set.
//
//   ImageInputs in = load_image_inputs("cats/", Shape{3, 32, 32});   // (N, 3, 32, 32) u8
//   in.files[i]                                                      // the file of row i
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace gpuml {

struct ImageInputs {
  Tensor x;                        // (N, C, H, W) u8 pixels
  std::vector<std::string> files;  // row i's file (a directory's images in name order)
  std::string notes;               // what was converted, resized or skipped; empty when nothing
};

// `path`: a .png/.jpg/.jpeg file (told apart by its first bytes) or a directory whose
// .png/.jpg/.jpeg files (not subdirectories) are read in name order; other files are skipped and
// counted in `notes`. `model_input` must be (C, H, W) with C 1 or 3, else the error says what the
// model takes instead.
ImageInputs load_image_inputs(const std::string& path, const Shape& model_input);

// Whether a file name ends in .png, .jpg or .jpeg (any case).
bool has_image_extension(const std::string& path);

}  // namespace gpuml
