// `gpuml data pack`: converts a dataset into shards (data/shard_format.h), streaming, so its
// memory stays bounded whatever the input size. Every packed dataset has the fields
// x (the sample, in the input's dtype and shape) and y i64 () (the class id), and a "train"
// split, plus "test" when the input has one. What each input kind means:
//   - a directory of MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...): train + test,
//     images (N, H, W) become x u8 (1, H, W); or an IDX images file with options.labels naming
//     the labels file: train only. Read record by record (gzip included): streaming.
//   - a .npy file of samples with options.labels naming an .npy of labels: train only; read in
//     chunks of rows (streaming) when the dtype is stored as is (u1 f2 f4 f8 i4 i8, little endian).
//   - a .npz with x_train/y_train[/x_test/y_test] or x/y: each array is read whole (NPZ members
//     are zip entries); memory is the size of the largest array.
//   - a .csv (label column as options.csv_label, default the last): read whole; x f32 (F,).
//   - a directory with one sub-folder of PNG/JPEG images per class (class ids in sorted folder
//     order), or with train/ and test/ folders laid out that way: images decoded one at a time,
//     resized (bilinear) to options.image_width x image_height (default: the most common size and
//     channel count, reported in PackReport::notes), x u8 (C, H, W); the class folder names are
//     the manifest's class_names. Files are packed
//     in an order shuffled by options.seed, so shards do not hold one class each.
//   - a text corpus with options.tokenizer naming a tokenizer.json (data/bpe.h): a token dataset,
//     one field "tokens" u16 (u32 for vocabularies past 65,536) per record, the tokens of the
//     first 90% of the corpus's bytes (cut where a piece of the pre-tokenizer begins) in split
//     "train", the rest in "validation"; the tokenizer is copied into the dataset as tokenizer.json
//     and the manifest says the vocabulary size. Streaming (1 MiB chunks).
//   - "synthetic:N[:CxHxW]": N random u8 records (default 1x28x28) with labels 0..9 (Philox,
//     options.seed) and a test split of min(N/10, 10000), for benchmarks.
//
//   data::PackOptions opt;
//   opt.shard_bytes = 64 << 20;
//   opt.on_progress = [&](int64_t done, int64_t total) { bar.update(done); };
//   data::PackReport r = data::pack_dataset("/usr/share/datasets/fashion-mnist", "fmnist-shards", opt);
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace gpuml::data {

struct PackOptions {
  uint64_t shard_bytes = uint64_t{64} << 20;
  std::string labels;            // labels file for a single IDX or .npy samples file
  std::string csv_label;         // CSV: label column name; empty: the last column
  std::string csv_fill;          // CSV: "" (a missing value is an error) or a number to fill it with
  int64_t image_width = 0;       // image folders: output size; 0 = the most common size
  int64_t image_height = 0;
  int image_channels = 0;        // image folders: 1 (gray) or 3 (RGB); 0 = the most common
  uint64_t seed = 0;             // image file order, synthetic data
  std::string tokenizer;         // a tokenizer.json: the input is a text corpus to tokenize
  bool allow_invalid_utf8 = false;  // text: keep bytes that are not UTF-8 as bytes (data/pretokenize.h)
  // Called as records are written: (records done, records in all splits); for a text corpus,
  // (bytes read, the corpus's bytes). May be empty.
  std::function<void(int64_t, int64_t)> on_progress;
};

struct PackReport {
  ShardManifest manifest;
  std::string description;  // "IDX /data/fmnist: 60000 train, 10000 test"
  // What the user should know about the conversion, one line each: for image folders the size
  // and channels chosen and why, how many images were resized or converted, files skipped.
  std::vector<std::string> notes;
};

PackReport pack_dataset(const std::string& input, const std::filesystem::path& out_dir, const PackOptions& options);

}  // namespace gpuml::data
