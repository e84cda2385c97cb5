// Image-folder input for `gpuml data pack`: DIR/<class>/*.png|jpg|jpeg (class ids in sorted
// folder-name order), or DIR/train/<class>/... with an optional DIR/test/<class>/... Images are
// decoded one at a time and resized, so memory holds one image whatever the folder's size.
#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "data/image_codec.h"
#include "data/pack_sources.h"
#include "data/permutation.h"

namespace gpuml::data::pack_detail {

namespace fs = std::filesystem;

namespace {

struct LabelledFile {
  std::string path;
  int64_t label;
};

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The files of one split, in an order shuffled by `seed` (so that shards mix classes).
std::vector<LabelledFile> list_split(const fs::path& dir, const std::vector<std::string>& classes, uint64_t seed) {
  std::vector<LabelledFile> files;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> names;
    if (fs::is_directory(dir / classes[c]))
      for (const auto& e : fs::directory_iterator(dir / classes[c]))
        if (e.is_regular_file() && is_image_name(e.path())) names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    for (std::string& n : names) files.push_back({std::move(n), static_cast<int64_t>(c)});
  }
  std::vector<int64_t> order = philox_permutation(static_cast<int64_t>(files.size()), seed, kSplitStream - 1);
  std::vector<LabelledFile> shuffled;
  shuffled.reserve(files.size());
  for (int64_t i : order) shuffled.push_back(files[static_cast<size_t>(i)]);
  return shuffled;
}

}  // namespace

PackReport pack_image_folder(const std::string& dir, const fs::path& out, const PackOptions& o) {
  fs::path root = dir;
  bool split_layout = fs::is_directory(root / "train");
  fs::path train_dir = split_layout ? root / "train" : root;
  std::vector<std::string> classes = sorted_subdirs(train_dir);
  GPUML_CHECK_KIND(ErrorKind::Io, !classes.empty(),
                   "{}: not a dataset `gpuml data pack` reads: no IDX files and no class sub-folders of images", dir);
  std::vector<std::pair<std::string, std::vector<LabelledFile>>> splits;
  splits.push_back({"train", list_split(train_dir, classes, o.seed)});
  if (split_layout && fs::is_directory(root / "test")) {
    for (const std::string& c : sorted_subdirs(root / "test"))
      GPUML_CHECK_KIND(ErrorKind::Io, std::binary_search(classes.begin(), classes.end(), c),
                       "{}: test class folder '{}' has no train folder", dir, c);
    splits.push_back({"test", list_split(root / "test", classes, o.seed + 1)});
  }
  int64_t total = 0;
  for (auto& [name, files] : splits) {
    GPUML_CHECK_KIND(ErrorKind::Io, !files.empty(), "{}: the {} split has no .png/.jpg/.jpeg images", dir, name);
    total += static_cast<int64_t>(files.size());
  }

  // Output size and channels default to the first image's.
  Image first = decode_image_file(splits[0].second[0].path, o.image_channels);
  int64_t width = o.image_width > 0 ? o.image_width : first.width;
  int64_t height = o.image_height > 0 ? o.image_height : first.height;
  int channels = first.channels;
  ShardWriter w(out, sample_fields(DType::u8, {channels, height, width}), o.shard_bytes);
  w.set_source("images " + dir);
  RecordSink sink(w, static_cast<size_t>(channels * height * width), total, o);
  for (auto& [name, files] : splits) {
    w.begin_split(name);
    for (const LabelledFile& f : files) {
      Image img = decode_image_file(f.path, channels);
      sink.add(to_chw_resized(img, width, height).data(), f.label);
    }
    sink.flush();
  }
  PackReport r{w.finish(), ""};
  r.description = fmt::format("images {}: {} classes, {} train{}, u8 ({}, {}, {})", dir, classes.size(),
                              splits[0].second.size(),
                              splits.size() > 1 ? fmt::format(", {} test", splits[1].second.size()) : "", channels,
                              height, width);
  return r;
}

}  // namespace gpuml::data::pack_detail
