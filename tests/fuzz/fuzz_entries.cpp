#include "fuzz_entries.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <zlib.h>

#include "core/error.h"
#include "data/bpe.h"
#include "data/pretokenize.h"
#include "data/shard_format.h"
#include "data/shard_reader.h"
#include "data/text.h"
#include "interop/onnx_import.h"
#include "io/crc32c.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "train/dataset_source.h"
#include "train/resume.h"
#include "train/shard_source.h"
#include "train/task.h"

namespace gpuml::fuzz {

namespace fs = std::filesystem;

namespace {

// One directory per process, emptied before each input: files from the previous input must not
// leak into the next one (a shard the manifest no longer lists, say).
// Removed at exit (a crash leaves it, next to the crashing input's artifact).
struct WorkDir {
  fs::path path;
  WorkDir() {
    fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    path = base / ("gpuml-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~WorkDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

const fs::path& work_dir() {
  static const WorkDir dir;
  return dir.path;
}

fs::path fresh_dir() {
  const fs::path& d = work_dir();
  fs::create_directories(d);  // in case something outside removed it
  for (const auto& entry : fs::directory_iterator(d)) fs::remove_all(entry.path());
  return d;
}

fs::path write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) std::abort();  // the harness, not the reader, failed
  return path;
}

// Runs `read`; a gpuml::Error is the reader refusing the input, which is what we want.
template <typename Read>
void expect_clean(Read read) {
  try {
    read();
  } catch (const Error&) {
  }
}

std::string gzip(std::string_view bytes) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, bytes.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// The first byte picks options, the rest is the file: the CLI's flags are inputs too.
std::pair<unsigned, std::string_view> option_byte(std::string_view bytes) {
  if (bytes.empty()) return {0, bytes};
  return {static_cast<unsigned char>(bytes[0]), bytes.substr(1)};
}

// ---- the entries ---------------------------------------------------------------------------

// The sample shape of the model predict is asked to feed (the cnn preset's): images are made
// into it, other inputs are read as they are.
const Shape kPredictModelInput = {1, 28, 28};

// `gpuml predict --input images-idx3-ubyte` (IDX raw; gzip when the bytes say so).
void run_idx(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "input-idx3-ubyte", bytes);
  expect_clean([&] { load_predict_inputs(p.string(), kPredictModelInput); });
}

// The same reader through gzip: the fuzzer mutates what lies inside the compression.
void run_idx_gzip(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "input-idx3-ubyte.gz", gzip(bytes));
  expect_clean([&] { load_predict_inputs(p.string(), kPredictModelInput); });
}

// `gpuml train --data x.csv [--csv-label NAME] [--csv-fill mean|NUMBER]` and `predict --input x.csv`.
void run_csv(std::string_view bytes) {
  auto [option, text] = option_byte(bytes);
  fs::path p = write_file(fresh_dir() / "data.csv", text);
  if ((option & 3) == 3) {
    expect_clean([&] { load_predict_inputs(p.string(), kPredictModelInput); });
    return;
  }
  DatasetOptions o;
  o.path = p.string();
  static const char* const fills[] = {"", "mean", "0", "nan"};
  o.csv_fill = fills[option & 3];
  if (option & 4) o.csv_label = "label";
  expect_clean([&] { load_training_data(o); });
}

// `gpuml predict --input x.npy`.
void run_npy(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "input.npy", bytes);
  expect_clean([&] { load_predict_inputs(p.string(), kPredictModelInput); });
}

// `gpuml train --data x.npz`.
void run_npz(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "data.npz", bytes);
  DatasetOptions o;
  o.path = p.string();
  expect_clean([&] { load_training_data(o); });
}

// `gpuml train --init-from w.safetensors` and every checkpoint read.
void run_safetensors(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "weights.safetensors", bytes);
  expect_clean([&] { load_safetensors(p); });
}

// `gpuml train --model model.json`.
void run_model_json(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "model.json", bytes);
  expect_clean([&] { nn::Model::from_json_file(p.string()); });
}

// `gpuml data info DIR` and `gpuml train --data DIR`: the manifest of a sharded dataset.
void run_shard_manifest(std::string_view bytes) {
  fs::path dir = fresh_dir();
  write_file(dir / data::kShardManifestName, bytes);
  expect_clean([&] { data::describe_shard_dataset(dir); });
  expect_clean([&] { data::ShardDataset ds(dir); });
}

// The records of a sharded dataset under a valid manifest (its checksum computed here, so the
// records themselves are what varies): `gpuml eval --data DIR` and `gpuml data verify DIR`.
void run_shard_records(std::string_view bytes) {
  auto [option, records] = option_byte(bytes);
  struct Schema {
    const char* x_dtype;
    const char* x_shape;
    const char* y_dtype;
    size_t record_bytes;
  };
  static const Schema schemas[] = {
      {"u8", "[2, 2]", "i64", 4 + 8},
      {"f32", "[3]", "i32", 12 + 4},
      {"f64", "[1]", "u8", 8 + 1},
      {"bf16", "[2]", "i64", 4 + 8},
  };
  const Schema& s = schemas[option % 4];
  const size_t n = records.size() / s.record_bytes;
  if (n == 0) return;
  records = records.substr(0, n * s.record_bytes);
  fs::path dir = fresh_dir();
  write_file(dir / "test-00000.shard", records);
  const uint32_t crc = crc32c(records.data(), records.size());
  const std::string manifest = fmt::format(
      R"({{"format": "gpuml-shards", "version": 1, "num_classes": {},
          "fields": [{{"name": "x", "dtype": "{}", "shape": {}}}, {{"name": "y", "dtype": "{}", "shape": []}}],
          "splits": [{{"name": "test", "records": {}, "shards": [
            {{"file": "test-00000.shard", "records": {}, "bytes": {}, "crc32c": "{:08x}"}}]}}]}})",
      1 + (option >> 2) % 16, s.x_dtype, s.x_shape, s.y_dtype, n, n, records.size(), crc);
  write_file(dir / data::kShardManifestName, manifest);
  expect_clean([&] {
    data::InMemoryDataset test = load_shard_test_split(dir.string());
    check_class_ids(test.labels(), data::read_shard_manifest(dir).num_classes, dir.string());
    check_finite(test.features(), dir.string());
  });
  expect_clean([&] { data::verify_shard_dataset(dir); });
}

// `gpuml train --model m.onnx`, `gpuml eval --checkpoint m.onnx`.
void run_onnx(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "model.onnx", bytes);
  expect_clean([&] { interop::import_onnx_file(p); });
}

// `gpuml train --resume last.safetensors`: the checkpoint's metadata (progress, model, config).
void run_checkpoint(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "last.safetensors", bytes);
  expect_clean([&] { read_resume_point(p.string(), TrainConfig{}); });
}

// `gpuml predict --input photo.png` (or .jpg): decoded, converted and resized to the model's
// input; the first byte picks the name, the content decides the format.
void run_image(std::string_view bytes) {
  auto [option, image] = option_byte(bytes);
  fs::path p = write_file(fresh_dir() / (option & 1 ? "input.jpg" : "input.png"), image);
  expect_clean([&] { load_predict_inputs(p.string(), kPredictModelInput); });
}

// `gpuml train --data FILE.txt` (a character language model): the corpus, a few training
// windows and the validation windows, for a window of 1..16 characters.
void run_text(std::string_view bytes) {
  auto [option, text] = option_byte(bytes);
  fs::path p = write_file(fresh_dir() / "data.txt", text);
  const int64_t block = 1 + option % 16;
  const uint64_t seed = option;  // a structured binding cannot be captured (C++20, clang)
  expect_clean([&] {
    data::TextCorpus corpus = data::read_text_corpus(p.string(), block);
    data::TextWindowLoader loader(corpus.train, {block, 2, seed, nullptr});
    for (int i = 0; i < 2 && loader.next(); ++i) {
    }
    data::text_windows(corpus.validation, block);
  });
}

// `gpuml data pack --tokenizer FILE` and `gpuml generate` (a run's tokenizer): a tokenizer.json;
// when it is accepted, text must still encode to ids in the vocabulary and decode back.
void run_tokenizer(std::string_view bytes) {
  fs::path p = write_file(fresh_dir() / "tokenizer.json", bytes);
  expect_clean([&] {
    const data::BpeTokenizer t = data::BpeTokenizer::read(p);
    const std::string text = "To be, or not to be: that's caf\xC3\xA9 \xE2\x82\xAC" "42!\n\xFF";
    const std::vector<int32_t> ids = t.encode(text);
    for (int32_t id : ids)
      if (id < 0 || id >= t.vocab_size()) std::abort();
    if (t.decode(ids) != text) std::abort();
  });
}

// Encoding any bytes (a corpus with --allow-invalid-utf8, any prompt) with a tokenizer whose
// merges span letters, spaces and multi-byte characters: pieces join back to the bytes, and the
// ids decode back to them.
void run_bpe_encode(std::string_view bytes) {
  static const data::BpeTokenizer t = data::BpeTokenizer::from_merges(
      {{'t', 'h'}, {256, 'e'}, {' ', 't'}, {258, 'h'}, {0xC3, 0xA9}, {'\'', 's'}, {' ', ' '}, {262, 262}, {'4', '2'}});
  std::string joined;
  data::split_pretokens(bytes, true, [&](std::string_view piece) {
    if (piece.empty()) std::abort();
    joined += piece;
  });
  if (joined != bytes) std::abort();
  if (t.decode(t.encode(bytes)) != bytes) std::abort();
}

}  // namespace

const std::vector<FuzzEntry>& fuzz_entries() {
  static const std::vector<FuzzEntry> entries = {
      {"idx", run_idx},
      {"idx_gzip", run_idx_gzip},
      {"csv", run_csv},
      {"npy", run_npy},
      {"npz", run_npz},
      {"safetensors", run_safetensors},
      {"model_json", run_model_json},
      {"shard_manifest", run_shard_manifest},
      {"shard_records", run_shard_records},
      {"onnx", run_onnx},
      {"checkpoint", run_checkpoint},
      {"image", run_image},
      {"text", run_text},
      {"tokenizer", run_tokenizer},
      {"bpe_encode", run_bpe_encode},
  };
  return entries;
}

const FuzzEntry& fuzz_entry(std::string_view name) {
  for (const FuzzEntry& e : fuzz_entries())
    if (name == e.name) return e;
  std::fprintf(stderr, "no fuzz entry named '%.*s'\n", static_cast<int>(name.size()), name.data());
  std::abort();
}

}  // namespace gpuml::fuzz
