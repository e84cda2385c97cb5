// `gpuml data pack|info|verify`: sharded datasets for streaming training (docs/SHARDS.md);
// `gpuml data tokenize`: a byte-level BPE tokenizer trained on a corpus (data/bpe_train.h).
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "data/bpe_train.h"
#include "data/pack.h"
#include "data/shard_reader.h"
#include "train/progress.h"

namespace gpuml::cli {

namespace {

struct PackArgs {
  std::string input, output, shard_size = "64M", image_size, labels, csv_label, csv_fill, tokenizer;
  int channels = 0;
  uint64_t seed = 0;
  bool quiet = false, allow_invalid_utf8 = false;
};

struct TokenizeArgs {
  std::string corpus, output;
  int64_t vocab_size = 4096;
  std::vector<std::string> special_tokens;
  bool quiet = false, allow_invalid_utf8 = false;
};

int run_tokenize(const TokenizeArgs& a) {
  data::BpeTrainOptions o;
  o.vocab_size = a.vocab_size;
  o.special_tokens = a.special_tokens;
  o.allow_invalid_utf8 = a.allow_invalid_utf8;
  ProgressBar read_bar("read", 0, "B"), merge_bar("merge", 0, "merges");
  int64_t read_shown = 0, merges_shown = 0;
  bool reading = false, merging = false;
  if (!a.quiet) {
    o.on_read = [&](int64_t done, int64_t total) {
      read_bar.set_total(total);
      read_bar.advance(done - read_shown, done - read_shown);
      read_shown = done;
      reading = true;
    };
    o.on_merge = [&](int64_t done, int64_t total) {
      if (reading) read_bar.finish();
      reading = false;
      merge_bar.set_total(total);
      merge_bar.advance(done - merges_shown, done - merges_shown);
      merges_shown = done;
      merging = true;
    };
  }
  const auto start = std::chrono::steady_clock::now();
  data::BpeTrainReport r = data::train_bpe(a.corpus, o);
  if (reading) read_bar.finish();
  if (merging) merge_bar.finish();
  write_file_atomically(a.output, r.tokenizer.to_json());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!r.note.empty()) fmt::print("note: {}\n", r.note);
  if (r.invalid_bytes > 0)
    fmt::print("note: {} bytes that are not UTF-8 were kept as bytes (--allow-invalid-utf8)\n", r.invalid_bytes);
  fmt::print("wrote {}: a byte-level BPE of {} tokens ({} merges) from {} ({}, {} pieces, {} distinct) in {:.1f} s\n",
             a.output, r.tokenizer.vocab_size(), r.tokenizer.merge_count(), a.corpus,
             data::format_bytes(static_cast<uint64_t>(r.bytes)), r.pieces, r.distinct, seconds);
  return 0;
}

// "32x32" -> (32, 32); "28" -> (28, 28)
std::pair<int64_t, int64_t> parse_image_size(const std::string& text) {
  size_t x = text.find('x');
  try {
    int64_t w = std::stoll(text.substr(0, x));
    int64_t h = x == std::string::npos ? w : std::stoll(text.substr(x + 1));
    GPUML_CHECK(w > 0 && h > 0, "--image-size {}: width and height must be positive", text);
    return {w, h};
  } catch (const std::logic_error&) {
    GPUML_FAIL(ErrorKind::Invalid, "--image-size '{}': expected WIDTHxHEIGHT, e.g. 32x32", text);
  }
}

int run_pack(const PackArgs& a) {
  data::PackOptions o;
  o.shard_bytes = data::parse_byte_size(a.shard_size, "--shard-size");
  if (!a.image_size.empty()) std::tie(o.image_width, o.image_height) = parse_image_size(a.image_size);
  o.image_channels = a.channels;
  o.labels = a.labels;
  o.csv_label = a.csv_label;
  o.csv_fill = a.csv_fill;
  o.seed = a.seed;
  o.tokenizer = a.tokenizer;
  o.allow_invalid_utf8 = a.allow_invalid_utf8;
  // Made before packing starts, so that its clock (and the rate it shows) includes the first records.
  ProgressBar bar("pack", 0, a.tokenizer.empty() ? "records" : "B");
  bool shown_any = false;
  int64_t shown = 0;
  if (!a.quiet)
    o.on_progress = [&](int64_t done, int64_t total) {
      bar.set_total(total);
      bar.advance(done - shown, done - shown);
      shown = done;
      shown_any = true;
    };
  data::PackReport r = data::pack_dataset(a.input, a.output, o);
  if (shown_any) bar.finish();
  for (const std::string& note : r.notes) fmt::print("{}\n", note);
  uint64_t bytes = 0;
  size_t shards = 0;
  for (const data::ShardSplit& s : r.manifest.splits) {
    shards += s.shards.size();
    for (const data::ShardFile& f : s.shards) bytes += f.bytes;
  }
  fmt::print("packed {} into {}: {} shards, {}\n", r.description, a.output, shards, data::format_bytes(bytes));
  return 0;
}

}  // namespace

Command add_data_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("data", "Sharded datasets for streaming training: pack, info, verify; tokenize: a BPE tokenizer");
  cmd->require_subcommand(1);

  auto pack = std::make_shared<PackArgs>();
  CLI::App* p = cmd->add_subcommand(
      "pack", "Convert IDX, NPY/NPZ, CSV, an image folder (one sub-folder per class) or synthetic:N into shards");
  p->add_option("INPUT", pack->input, "The dataset to convert")->required();
  p->add_option("OUTDIR", pack->output, "The directory to write (new, empty, or an earlier pack)")->required();
  p->add_option("--shard-size", pack->shard_size, "Bytes per shard: 4096, 512K, 64M, 1G")->capture_default_str();
  p->add_option("--image-size", pack->image_size,
                "Image folders: resize to WIDTHxHEIGHT (default: the most common size)");
  p->add_option("--image-channels", pack->channels, "Image folders: 1 (gray) or 3 (RGB) (default: the most common)")
      ->check(CLI::IsMember({0, 1, 3}));
  p->add_option("--labels", pack->labels, "Labels for a single IDX or .npy samples file");
  p->add_option("--csv-label", pack->csv_label, "CSV: the label column's name (default: the last column)");
  p->add_option("--csv-fill", pack->csv_fill, "CSV: fill missing values with this number (default: they are errors)")
      ->check(csv_fill_value());
  p->add_option("--seed", pack->seed, "Image folders: the file order; synthetic: the data")->capture_default_str();
  p->add_option("--tokenizer", pack->tokenizer,
                "A tokenizer.json (gpuml data tokenize): INPUT is a text corpus, packed as token ids");
  p->add_flag("--allow-invalid-utf8", pack->allow_invalid_utf8,
              "Text: keep bytes that are not UTF-8 as bytes (default: refuse the corpus)");
  p->add_flag("--quiet", pack->quiet, "No progress bar");

  auto tok = std::make_shared<TokenizeArgs>();
  CLI::App* t = cmd->add_subcommand(
      "tokenize", "Train a byte-level BPE tokenizer on a text corpus; writes tokenizers' tokenizer.json");
  t->add_option("CORPUS", tok->corpus, "A UTF-8 text file")->required();
  t->add_option("OUTPUT", tok->output, "The tokenizer file to write (tokenizer.json)")->required();
  t->add_option("--vocab-size", tok->vocab_size, "Tokens: 256 bytes + special tokens + merges")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{257}, data::kMaxVocabSize));
  t->add_option("--special-tokens", tok->special_tokens,
                "Added tokens, ids after the merges, cut out of the text before it is split (e.g. "
                "'<|endoftext|>' between documents); comma-separated or repeated")
      ->delimiter(',');
  t->add_flag("--allow-invalid-utf8", tok->allow_invalid_utf8,
              "Keep bytes that are not UTF-8 as bytes (default: refuse the corpus)");
  t->add_flag("--quiet", tok->quiet, "No progress bars");

  auto dir = std::make_shared<std::string>();
  CLI::App* info = cmd->add_subcommand("info", "Schema, splits, record counts and sizes of a sharded dataset");
  info->add_option("DIR", *dir, "A directory with a manifest.json")->required();
  auto verify_dir = std::make_shared<std::string>();
  auto verify_quiet = std::make_shared<bool>(false);
  CLI::App* verify = cmd->add_subcommand("verify", "Check every shard's size and CRC-32C; exit 1 if one is damaged");
  verify->add_option("DIR", *verify_dir, "A directory with a manifest.json")->required();
  verify->add_flag("--quiet", *verify_quiet, "No progress bar");

  return {cmd, [=] {
            if (p->parsed()) return run_pack(*pack);
            if (t->parsed()) return run_tokenize(*tok);
            if (info->parsed()) {
              fmt::print("{}", data::describe_shard_dataset(*dir));
              return 0;
            }
            ProgressBar bar("verify", 0, "shards");
            bool shown_any = false;
            auto on_shard = [&](int64_t done, int64_t total) {
              if (*verify_quiet) return;
              bar.set_total(total);
              bar.advance(1, 1);
              shown_any = true;
              (void)done;
            };
            std::vector<data::ShardProblem> problems = data::verify_shard_dataset(*verify_dir, on_shard);
            if (shown_any) bar.finish();
            for (const data::ShardProblem& problem : problems) fmt::print(stderr, "damaged: {}\n", problem.message);
            if (!problems.empty()) {
              fmt::print(stderr, "gpuml: error: {}: {} problem(s) found\n", *verify_dir, problems.size());
              return 1;
            }
            fmt::print("{}: all shards match their sizes and checksums\n", *verify_dir);
            return 0;
          }};
}

}  // namespace gpuml::cli
