#include "train/predict_images.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/spelling.h"
#include "data/image_codec.h"

namespace gpuml {

namespace fs = std::filesystem;

bool has_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

ImageInputs load_image_inputs(const std::string& path, const Shape& model_input) {
  GPUML_CHECK_SHAPE(model_input.size() == 3 && (model_input[0] == 1 || model_input[0] == 3),
                    "{}: images become (C, H, W) samples with C 1 (gray) or 3 (RGB), but the model takes samples of "
                    "shape {}; give its inputs as a .csv, .npy or .npz",
                    path, shape_str(model_input));
  const int channels = static_cast<int>(model_input[0]);
  const int64_t height = model_input[1], width = model_input[2];

  std::vector<std::string> files;
  int64_t skipped = 0;
  if (fs::is_directory(path)) {
    for (const fs::directory_entry& e : fs::directory_iterator(path)) {
      std::error_code ec;
      if (e.is_regular_file(ec) && has_image_extension(e.path().string())) files.push_back(e.path().string());
      else ++skipped;
    }
    std::sort(files.begin(), files.end());
    GPUML_CHECK_KIND(ErrorKind::Io, !files.empty(),
                     "{}: a directory with no .png/.jpg/.jpeg files to predict on (subdirectories are not read)", path);
  } else {
    files.push_back(path);
  }

  const int64_t per_image = channels * height * width;
  std::vector<uint8_t> pixels;
  pixels.reserve(static_cast<size_t>(per_image) * files.size());
  int64_t resized = 0, converted = 0;
  for (const std::string& file : files) {
    const data::ImageInfo info = data::read_image_info(file);
    resized += info.width != width || info.height != height;
    converted += info.channels != channels;
    const data::Image image = data::decode_image_file(file, channels);
    const std::vector<uint8_t> chw = data::to_chw_resized(image, width, height);
    pixels.insert(pixels.end(), chw.begin(), chw.end());
  }
  ImageInputs in;
  in.x = Tensor::empty({static_cast<int64_t>(files.size()), channels, height, width}, DType::u8);
  if (!pixels.empty()) std::memcpy(in.x.raw_data(), pixels.data(), pixels.size());
  in.files = std::move(files);
  std::vector<std::string> notes;
  if (resized > 0) notes.push_back(fmt::format("{} resized to {}x{}", count_of(resized, "image"), width, height));
  if (converted > 0)
    notes.push_back(fmt::format("{} converted to {}", count_of(converted, "image"), channels == 1 ? "gray" : "RGB"));
  if (skipped > 0) notes.push_back(fmt::format("{} other entries skipped", skipped));
  in.notes = fmt::format("{}", fmt::join(notes, ", "));
  return in;
}

}  // namespace gpuml
