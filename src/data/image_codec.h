// PNG (libpng) and JPEG (libjpeg-turbo) images as u8 pixels, and the bilinear resize that
// `gpuml data pack` applies to image folders. Pixels are interleaved (H, W, C) as the codecs
// give them; to_chw_resized() produces the (C, H, W) layout models take.
//
//   data::Image img = data::decode_image_file("cats/001.jpg", /*channels=*/3);   // (H, W, 3)
//   std::vector<uint8_t> chw = data::to_chw_resized(img, 32, 32);               // (3, 32, 32)
//   data::write_png_file("out.png", img);                                       // for tests and tools
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpuml::data {

struct Image {
  int64_t width = 0, height = 0;
  int channels = 0;             // 1 (gray) or 3 (RGB)
  std::vector<uint8_t> pixels;  // (height, width, channels)
};

// Decodes a PNG or JPEG (told apart by their magic bytes, not the name), converting to
// `channels` (1 or 3; 0 keeps gray as 1 and everything else as RGB 3; alpha is dropped).
// Errors are ErrorKind::Io and name the file.
Image decode_image_file(const std::string& path, int channels = 0);

// The size of a PNG or JPEG and the channels decode_image_file(path, 0) gives, from its header
// alone (no pixels decoded): for choosing a folder's common size before decoding every image.
struct ImageInfo {
  int64_t width = 0, height = 0;
  int channels = 0;
};
ImageInfo read_image_info(const std::string& path);

// Bilinear resize with half-pixel centres (as PIL/OpenCV's INTER_LINEAR without antialias),
// rounding to nearest; returns (C, height, width).
std::vector<uint8_t> to_chw_resized(const Image& image, int64_t width, int64_t height);

void write_png_file(const std::string& path, const Image& image);
void write_jpeg_file(const std::string& path, const Image& image, int quality = 95);

}  // namespace gpuml::data
