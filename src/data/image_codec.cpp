#include "data/image_codec.h"

// jpeglib.h needs FILE and size_t declared before it.
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace gpuml::data {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

FilePtr open_file(const std::string& path, const char* mode) {
  FilePtr f(std::fopen(path.c_str(), mode));
  GPUML_CHECK_KIND(ErrorKind::Io, f != nullptr, "{}: cannot open: {}", path, std::strerror(errno));
  return f;
}

// The most bytes a decoded image may take. A header is a few bytes that can claim 65500 x 65500
// pixels (found by fuzzing: a 150-byte JPEG made gpuml allocate 4 GB before reading any pixel),
// so the size is checked before anything is allocated. 256 MiB is a 9,000 x 9,000 RGB photo.
constexpr uint64_t kMaxDecodedBytes = uint64_t{256} << 20;

// Empty when an image of this size may be decoded, else why not.
std::string too_large(const std::string& path, uint64_t width, uint64_t height, int channels) {
  const uint64_t bytes = width * height * static_cast<uint64_t>(channels);
  if (width > 0 && height > 0 && bytes <= kMaxDecodedBytes) return {};
  if (width == 0 || height == 0) return fmt::format("{}: the image header says {}x{} pixels", path, width, height);
  return fmt::format("{}: a {}x{} image ({} MiB decoded) is larger than gpuml decodes ({} MiB); resize it first", path,
                     width, height, bytes >> 20, kMaxDecodedBytes >> 20);
}

Image decode_png(const std::string& path, int channels) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  GPUML_CHECK_KIND(ErrorKind::Io, png_image_begin_read_from_file(&png, path.c_str()) != 0, "{}: bad PNG: {}", path,
                   png.message);
  if (channels == 0) channels = (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  png.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (std::string why = too_large(path, png.width, png.height, channels); !why.empty()) {
    png_image_free(&png);
    GPUML_FAIL(ErrorKind::Invalid, "{}", why);
  }
  Image img{png.width, png.height, channels, std::vector<uint8_t>(PNG_IMAGE_SIZE(png))};
  bool ok = png_image_finish_read(&png, nullptr, img.pixels.data(), 0, nullptr) != 0;
  std::string message = png.message;
  png_image_free(&png);
  GPUML_CHECK_KIND(ErrorKind::Io, ok, "{}: bad PNG: {}", path, message);
  return img;
}

// libjpeg reports errors through a callback that must not return: jump back with its message.
struct JpegError {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

Image decode_jpeg(const std::string& path, int requested_channels) {
  FilePtr file = open_file(path, "rb");
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_error_exit;
  // Nothing that lives in a register may change between setjmp and a longjmp back: the image
  // and the requested channel count live on the heap.
  auto img = std::make_unique<Image>();
  img->channels = requested_channels;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    GPUML_FAIL(ErrorKind::Io, "{}: bad JPEG: {}", path, err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file.get());
  jpeg_read_header(&cinfo, TRUE);
  if (img->channels == 0) img->channels = cinfo.num_components == 1 ? 1 : 3;
  if (std::string why = too_large(path, cinfo.image_width, cinfo.image_height, img->channels); !why.empty()) {
    jpeg_destroy_decompress(&cinfo);
    GPUML_FAIL(ErrorKind::Invalid, "{}", why);
  }
  cinfo.out_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  img->width = cinfo.output_width;
  img->height = cinfo.output_height;
  img->pixels.resize(static_cast<size_t>(img->width * img->height * img->channels));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img->pixels.data() + static_cast<size_t>(cinfo.output_scanline) * img->width * img->channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return std::move(*img);
}

ImageInfo png_info(const std::string& path) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  GPUML_CHECK_KIND(ErrorKind::Io, png_image_begin_read_from_file(&png, path.c_str()) != 0, "{}: bad PNG: {}", path,
                   png.message);
  ImageInfo info{png.width, png.height, (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1};
  png_image_free(&png);
  return info;
}

ImageInfo jpeg_info(const std::string& path) {
  FilePtr file = open_file(path, "rb");
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_error_exit;
  auto info = std::make_unique<ImageInfo>();  // on the heap: survives the longjmp unchanged
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    GPUML_FAIL(ErrorKind::Io, "{}: bad JPEG: {}", path, err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file.get());
  jpeg_read_header(&cinfo, TRUE);
  *info = {cinfo.image_width, cinfo.image_height, cinfo.num_components == 1 ? 1 : 3};
  jpeg_destroy_decompress(&cinfo);
  return *info;
}

enum class ImageKind { png, jpeg };

ImageKind image_kind(const std::string& path) {
  uint8_t magic[8] = {};
  {
    FilePtr f = open_file(path, "rb");
    size_t got = std::fread(magic, 1, sizeof magic, f.get());
    GPUML_CHECK_KIND(ErrorKind::Io, got >= 3, "{}: too short to be an image", path);
  }
  if (magic[0] == 0x89 && magic[1] == 'P' && magic[2] == 'N' && magic[3] == 'G') return ImageKind::png;
  if (magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return ImageKind::jpeg;
  GPUML_FAIL(ErrorKind::Io, "{}: not a PNG or JPEG file (by its first bytes)", path);
}

}  // namespace

Image decode_image_file(const std::string& path, int channels) {
  GPUML_CHECK(channels == 0 || channels == 1 || channels == 3, "{}: channels must be 1 or 3, got {}", path, channels);
  return image_kind(path) == ImageKind::png ? decode_png(path, channels) : decode_jpeg(path, channels);
}

ImageInfo read_image_info(const std::string& path) {
  return image_kind(path) == ImageKind::png ? png_info(path) : jpeg_info(path);
}

std::vector<uint8_t> to_chw_resized(const Image& img, int64_t width, int64_t height) {
  GPUML_CHECK(img.width > 0 && img.height > 0 && width > 0 && height > 0, "resize {}x{} -> {}x{}: empty image",
              img.width, img.height, width, height);
  const int c = img.channels;
  std::vector<uint8_t> out(static_cast<size_t>(c * width * height));
  const double sx = double(img.width) / double(width), sy = double(img.height) / double(height);
  for (int64_t y = 0; y < height; ++y) {
    double fy = std::clamp((double(y) + 0.5) * sy - 0.5, 0.0, double(img.height - 1));
    auto y0 = static_cast<int64_t>(fy);
    int64_t y1 = std::min(y0 + 1, img.height - 1);
    double wy = fy - double(y0);
    for (int64_t x = 0; x < width; ++x) {
      double fx = std::clamp((double(x) + 0.5) * sx - 0.5, 0.0, double(img.width - 1));
      auto x0 = static_cast<int64_t>(fx);
      int64_t x1 = std::min(x0 + 1, img.width - 1);
      double wx = fx - double(x0);
      for (int ch = 0; ch < c; ++ch) {
        auto at = [&](int64_t yy, int64_t xx) { return double(img.pixels[static_cast<size_t>((yy * img.width + xx) * c + ch)]); };
        double v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
        out[static_cast<size_t>((ch * height + y) * width + x)] = static_cast<uint8_t>(std::lround(v));
      }
    }
  }
  return out;
}

void write_png_file(const std::string& path, const Image& img) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(img.width);
  png.height = static_cast<png_uint_32>(img.height);
  png.format = img.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  bool ok = png_image_write_to_file(&png, path.c_str(), 0, img.pixels.data(), 0, nullptr) != 0;
  std::string message = png.message;
  png_image_free(&png);
  GPUML_CHECK_KIND(ErrorKind::Io, ok, "{}: cannot write PNG: {}", path, message);
}

void write_jpeg_file(const std::string& path, const Image& img, int quality) {
  FilePtr file = open_file(path, "wb");
  jpeg_compress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_error_exit;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    GPUML_FAIL(ErrorKind::Io, "{}: cannot write JPEG: {}", path, err.message);
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file.get());
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = img.channels;
  cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row = const_cast<JSAMPROW>(img.pixels.data() + static_cast<size_t>(cinfo.next_scanline) * img.width * img.channels);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
}

}  // namespace gpuml::data
