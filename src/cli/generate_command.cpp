// `gpuml generate`: text from a trained GPT, streamed to stdout as it is produced.
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "train/generate.h"

namespace gpuml::cli {

Command add_generate_command(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    GenerateOptions o;
    bool no_cache = false, stats = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("generate", "Write text with a GPT trained on text (KV cache, streamed)");
  cmd->add_option("--checkpoint", a->checkpoint, "A run directory or checkpoint file")->required();
  cmd->add_option("--prompt", a->o.prompt, "Text to continue (characters of the run's vocabulary)");
  cmd->add_option("--max-new-tokens", a->o.max_new_tokens, "Tokens to write")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--temperature", a->o.temperature, "Divide the logits by T before sampling (> 0)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--top-k", a->o.top_k, "Sample among the K likeliest tokens (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->o.seed, "Seed of the sampling")->capture_default_str();
  cmd->add_flag("--greedy", a->o.greedy, "Always take the likeliest token");
  cmd->add_flag("--no-cache", a->no_cache, "Recompute the whole window for every token (slow; for comparison)");
  cmd->add_option("--threads", a->o.threads, "OpenMP threads (0: all; one is fastest for small models)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--stats", a->stats, "Print tokens/s to stderr at the end");
  return {cmd, [a] {
            a->o.use_cache = !a->no_cache;
            LoadedModel m = load_trained_model(a->checkpoint);
            GenerateResult r = generate_text(m, a->o, [&](const std::string& piece) {
              std::fwrite(piece.data(), 1, piece.size(), stdout);
              std::fflush(stdout);
            });
            std::fputc('\n', stdout);
            if (!r.note.empty()) fmt::print(stderr, "note: {}\n", r.note);
            if (a->stats)
              fmt::print(stderr, "generated {} tokens in {:.3f} s: {:.1f} tokens/s ({})\n", r.tokens.size(), r.seconds,
                         static_cast<double>(r.tokens.size()) / std::max(r.seconds, 1e-9),
                         a->o.use_cache ? "KV cache" : "recomputed");
            return 0;
          }};
}

}  // namespace gpuml::cli
