#include "data/idx_dataset.h"

#include <filesystem>
#include <vector>

#include "data/idx.h"

namespace gpuml::data {
namespace {

// The path of `stem` or `stem.gz` in `dir`, or "" when neither exists.
std::string find_member(const std::filesystem::path& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
  }
  return {};
}

void check_pair(const Tensor& x, const Tensor& y, const std::string& xpath, const std::string& ypath) {
  GPUML_CHECK_SHAPE(x.ndim() == 3, "{}: expected images (N, H, W), got {}", xpath, shape_str(x.shape()));
  GPUML_CHECK_SHAPE(y.ndim() == 1, "{}: expected labels (N,), got {}", ypath, shape_str(y.shape()));
  GPUML_CHECK_SHAPE(x.dim(0) == y.dim(0), "{} has {} images but {} has {} labels", xpath, x.dim(0), ypath,
                    y.dim(0));
}

}  // namespace

IdxDataset load_idx_dataset(const std::string& dir) {
  std::error_code ec;
  GPUML_CHECK_KIND(ErrorKind::Io, std::filesystem::is_directory(dir, ec), "{}: not a dataset directory", dir);
  const std::string stems[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                "t10k-labels-idx1-ubyte"};
  std::string paths[4];
  std::vector<std::string> missing;
  for (int i = 0; i < 4; ++i) {
    paths[i] = find_member(dir, stems[i]);
    if (paths[i].empty()) missing.push_back(stems[i] + "[.gz]");
  }
  GPUML_CHECK_KIND(ErrorKind::Io, missing.empty(), "{}: missing {} of the 4 MNIST-style files: {}", dir,
                   missing.size(), fmt::join(missing, ", "));
  IdxDataset ds{read_idx(paths[0]), read_idx(paths[1]), read_idx(paths[2]), read_idx(paths[3])};
  check_pair(ds.train_x, ds.train_y, paths[0], paths[1]);
  check_pair(ds.test_x, ds.test_y, paths[2], paths[3]);
  return ds;
}

}  // namespace gpuml::data
