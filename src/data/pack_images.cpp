// Image-folder input for `gpuml data pack`: DIR/<class>/*.png|jpg|jpeg (class ids in sorted
// folder-name order), or DIR/train/<class>/... with an optional DIR/test/<class>/... Images are
// decoded one at a time and resized, so memory holds one image whatever the folder's size.
// Without --image-size/--image-channels the output takes the most common size and channel count
// (from the image headers), never whichever file comes first.
#include <algorithm>
#include <filesystem>
#include <map>

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

struct SplitFiles {
  std::vector<LabelledFile> images;
  std::vector<std::string> skipped;  // files in the class folders that are not .png/.jpg/.jpeg
};

// The files of one split, in an order shuffled by `seed` (so that shards mix classes).
SplitFiles list_split(const fs::path& dir, const std::vector<std::string>& classes, uint64_t seed) {
  SplitFiles out;
  std::vector<LabelledFile> files;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> names;
    if (fs::is_directory(dir / classes[c]))
      for (const auto& e : fs::directory_iterator(dir / classes[c])) {
        if (!e.is_regular_file()) continue;
        if (is_image_name(e.path())) names.push_back(e.path().string());
        else out.skipped.push_back(e.path().string());
      }
    std::sort(names.begin(), names.end());
    for (std::string& n : names) files.push_back({std::move(n), static_cast<int64_t>(c)});
  }
  std::sort(out.skipped.begin(), out.skipped.end());
  std::vector<int64_t> order = philox_permutation(static_cast<int64_t>(files.size()), seed, kSplitStream - 1);
  out.images.reserve(files.size());
  for (int64_t i : order) out.images.push_back(files[static_cast<size_t>(i)]);
  return out;
}

// The key of `counts` seen most often; ties go to the smallest key, so the choice depends on
// the folder's contents alone, never on the file order.
template <typename Key>
std::pair<Key, int64_t> most_common(const std::map<Key, int64_t>& counts) {
  std::pair<Key, int64_t> best = *counts.begin();
  for (const auto& entry : counts)
    if (entry.second > best.second) best = entry;
  return best;
}

}  // namespace

PackReport pack_image_folder(const std::string& dir, const fs::path& out, const PackOptions& o) {
  fs::path root = dir;
  bool split_layout = fs::is_directory(root / "train");
  fs::path train_dir = split_layout ? root / "train" : root;
  std::vector<std::string> classes = sorted_subdirs(train_dir);
  GPUML_CHECK_KIND(ErrorKind::Io, !classes.empty(),
                   "{}: not a dataset `gpuml data pack` reads: no IDX files and no class sub-folders of images", dir);
  std::vector<std::pair<std::string, SplitFiles>> splits;
  splits.push_back({"train", list_split(train_dir, classes, o.seed)});
  if (split_layout && fs::is_directory(root / "test")) {
    for (const std::string& c : sorted_subdirs(root / "test"))
      GPUML_CHECK_KIND(ErrorKind::Io, std::binary_search(classes.begin(), classes.end(), c),
                       "{}: test class folder '{}' has no train folder", dir, c);
    splits.push_back({"test", list_split(root / "test", classes, o.seed + 1)});
  }
  int64_t total = 0;
  std::vector<std::string> skipped;
  for (auto& [name, files] : splits) {
    GPUML_CHECK_KIND(ErrorKind::Io, !files.images.empty(), "{}: the {} split has no .png/.jpg/.jpeg images", dir, name);
    total += static_cast<int64_t>(files.images.size());
    skipped.insert(skipped.end(), files.skipped.begin(), files.skipped.end());
  }

  // Without --image-size/--image-channels: the most common size and channel count over every
  // image (read from the headers), so the choice is the same whatever the file order.
  std::map<std::pair<int64_t, int64_t>, int64_t> sizes;  // (height, width) -> images
  std::map<int, int64_t> channel_counts;                 // 1 or 3 -> images
  for (auto& [name, files] : splits)
    for (const LabelledFile& f : files.images) {
      ImageInfo info = read_image_info(f.path);
      ++sizes[{info.height, info.width}];
      ++channel_counts[info.channels];
    }
  auto [common_size, size_count] = most_common(sizes);
  auto [common_channels, channel_count] = most_common(channel_counts);
  // A tie between gray and RGB keeps the colour.
  if (channel_counts.size() == 2 && channel_counts[1] == channel_counts[3]) common_channels = 3;
  const int64_t width = o.image_width > 0 ? o.image_width : common_size.second;
  const int64_t height = o.image_height > 0 ? o.image_height : common_size.first;
  const int channels = o.image_channels > 0 ? o.image_channels : common_channels;

  PackReport r;
  r.notes.push_back(o.image_width > 0 ? fmt::format("image size {}x{} (--image-size)", width, height)
                                      : fmt::format("image size {}x{}: the most common, {} of {} images (--image-size "
                                                    "WxH to choose another)",
                                                    width, height, size_count, total));
  r.notes.push_back(o.image_channels > 0
                        ? fmt::format("channels {} (--image-channels)", channels)
                        : fmt::format("channels {} ({}): the most common, {} of {} images (--image-channels to choose)",
                                      channels, channels == 1 ? "gray" : "RGB",
                                      channel_counts.size() == 1 ? total : channel_counts[channels], total));
  const int64_t resized = total - (sizes.count({height, width}) ? sizes[{height, width}] : 0);
  const int64_t converted = total - (channel_counts.count(channels) ? channel_counts[channels] : 0);
  (void)channel_count;
  std::string summary = fmt::format("converted: {} of {} images resized to {}x{}, {} {}", resized, total, width,
                                    height, converted, channels == 1 ? "RGB to gray" : "gray to RGB");
  if (!skipped.empty())
    summary += fmt::format("; skipped {} files that are not .png/.jpg/.jpeg (first: {})", skipped.size(), skipped[0]);
  r.notes.push_back(summary);

  ShardWriter w(out, sample_fields(DType::u8, {channels, height, width}), o.shard_bytes);
  w.set_source("images " + dir);
  w.set_class_names(classes);
  RecordSink sink(w, static_cast<size_t>(channels * height * width), total, o);
  for (auto& [name, files] : splits) {
    w.begin_split(name);
    for (const LabelledFile& f : files.images) {
      Image img = decode_image_file(f.path, channels);
      sink.add(to_chw_resized(img, width, height).data(), f.label);
    }
    sink.flush();
  }
  r.manifest = w.finish();
  r.description = fmt::format("images {}: {} classes, {} train{}, u8 ({}, {}, {})", dir, classes.size(),
                              splits[0].second.images.size(),
                              splits.size() > 1 ? fmt::format(", {} test", splits[1].second.images.size()) : "",
                              channels, height, width);
  return r;
}

}  // namespace gpuml::data::pack_detail
