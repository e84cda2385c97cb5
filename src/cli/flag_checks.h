// Checks of flag values that run while the command line is parsed, so that a bad value is a
// usage error (exit 2, "--device: ...") before anything runs, and the message lists what the
// flag accepts.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace gpuml::cli {

// A number >= low (inclusive) or > low: "--max-steps: must be >= 0, got -1".
CLI::Validator number_at_least(double low, bool inclusive);
// A number in [low, high): "--val-split: must be in [0, 1), got 1.5".
CLI::Validator number_in_range(double low, double high);
// auto, cpu, ref, cuda or cuda:N.
CLI::Validator device_name();
// A memory size with its unit (512M, 8G; 0 when `allow_zero`); a bare number is refused, so that
// "512" is never read as bytes by one flag and MiB by another.
CLI::Validator memory_size(bool allow_zero);
// "mean" or a number.
CLI::Validator csv_fill_value();
// --task: auto or a task's name (train/task.h), with a did-you-mean.
CLI::Validator task_name();
// --weight-decay-params: all or matrices (optim/optimizer.h), with a did-you-mean.
CLI::Validator weight_decay_params_name();
// A file name ending in one of `extensions` (".csv", ".npy").
CLI::Validator file_extension(std::vector<std::string> extensions);
// A directory to write into: absent, or an existing directory (not a file).
CLI::Validator directory_to_write();

// The parsed memory size of a flag checked by memory_size() (0 for "0").
uint64_t memory_size_bytes(const std::string& text, const std::string& flag);

}  // namespace gpuml::cli
