// The run directory of `gpuml train`: one run's files, never two runs' mixed. A new model.json
// beside an earlier run's best.safetensors would make `eval` score the old weights and `export`
// write the old network, so a run starts only in a new or empty directory.
//
//   check_run_dir(cfg);                          // before any work: throws if cfg.out cannot take the run
//   fs::path dir = open_run_dir(cfg);            // created (or cleared, or the resumed run's), ready
//
// The rules, for TrainConfig's out / overwrite / resume:
//   - out names a file: refused.
//   - out is absent or an empty directory: the run goes there.
//   - out is the directory of the run being resumed (--resume): it continues there, kept as is.
//   - out is any other non-empty directory: refused, unless `overwrite` (--overwrite), which
//     first removes an earlier run's files; it refuses a directory holding anything else
//     (another file, a subdirectory), so that a mistyped --out cannot wipe a home directory.
//   - out is empty (no --out): runs/<model>-<YYYYmmdd-HHMMSS>, and -2, -3, ... when that exists;
//     each is claimed with mkdir(2), so two runs started in the same second never share one.
#pragma once

#include <filesystem>
#include <string>

#include "train/train_config.h"

namespace gpuml {

// Throws Error (ErrorKind::Invalid) naming --out when the run cannot write there; writes nothing.
void check_run_dir(const TrainConfig& cfg);

// check_run_dir, then the directory made ready: created, cleared of an earlier run (overwrite),
// or left as it is (empty, or the resumed run's).
std::filesystem::path open_run_dir(const TrainConfig& cfg);

// parent/name, or parent/name-2, name-3, ...: the first that mkdir(2) creates (parent is created
// first). Atomic: of two processes asking at once, each gets its own directory.
std::filesystem::path create_unique_dir(const std::filesystem::path& parent, const std::string& name);

// Whether `name` is a file a run writes (model.json, checkpoints, logs, their temporary files).
bool is_run_file(const std::string& name);

}  // namespace gpuml
