#include "train/run_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <vector>

#include "core/error.h"

namespace gpuml {

namespace fs = std::filesystem;

namespace {

// The directory of the run --resume continues (a run directory, or a checkpoint file in one).
fs::path resumed_dir(const TrainConfig& cfg) {
  if (cfg.resume.empty()) return {};
  std::error_code ec;
  return fs::is_directory(cfg.resume, ec) ? fs::path(cfg.resume) : fs::path(cfg.resume).parent_path();
}

bool same_directory(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  const bool same = fs::equivalent(a.empty() ? "." : a, b.empty() ? "." : b, ec);
  return !ec && same;
}

// Up to `limit` names in `dir`, sorted, for messages; `foreign` gets the entries a run does not write.
std::vector<std::string> entries_of(const fs::path& dir, std::vector<std::string>& foreign) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    std::error_code ec;
    const bool plain = e.is_regular_file(ec) || e.is_symlink(ec);
    if (!plain || !is_run_file(name)) foreign.push_back(e.is_directory(ec) ? name + "/" : name);
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  std::sort(foreign.begin(), foreign.end());
  return names;
}

std::string listed(const std::vector<std::string>& names) {
  constexpr size_t kShown = 4;
  std::vector<std::string> shown(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kShown)));
  std::string text = fmt::format("{}", fmt::join(shown, ", "));
  if (names.size() > kShown) text += fmt::format(" and {} more", names.size() - kShown);
  return text;
}

std::string default_run_name(const std::string& model) {
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
  return fmt::format("{}-{}", fs::path(model).stem().string(), stamp);
}

}  // namespace

bool is_run_file(const std::string& name) {
  static const char* const kRunFiles[] = {"model.json",       "config.json",      "metrics.csv",     "curves.svg",
                                          "last.safetensors", "best.safetensors", "model.safetensors"};
  auto known = [](const std::string& n) {
    if (n.rfind("events.out.tfevents.", 0) == 0) return true;
    return std::find(std::begin(kRunFiles), std::end(kRunFiles), n) != std::end(kRunFiles);
  };
  if (known(name)) return true;
  // What an interrupted write_file_atomically leaves: ".<name>.tmp.<pid>.<hex>".
  const size_t tmp = name.find(".tmp.");
  return name.size() > 1 && name[0] == '.' && tmp != std::string::npos && known(name.substr(1, tmp - 1));
}

void check_run_dir(const TrainConfig& cfg) {
  // No --out: a fresh default name, or (--resume) the resumed run's directory.
  const fs::path out = cfg.out.empty() ? resumed_dir(cfg) : fs::path(cfg.out);
  if (out.empty()) return;
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  GPUML_CHECK(fs::is_directory(out, ec), "--out {}: is a file, not a directory; give a new or empty directory",
              out.string());
  const fs::path resumed = resumed_dir(cfg);
  if (!resumed.empty() && same_directory(out, resumed)) {
    GPUML_CHECK(!cfg.overwrite,
                "--overwrite with --resume {}: it would delete the run being resumed; drop --overwrite to continue "
                "it, or give another --out",
                cfg.resume);
    return;
  }
  std::vector<std::string> foreign;
  const std::vector<std::string> names = entries_of(out, foreign);
  if (names.empty()) return;
  if (!cfg.overwrite)
    GPUML_FAIL(ErrorKind::Invalid,
               "--out {}: the directory is not empty ({}); a new run there would mix its files with what is there. "
               "Give --overwrite to clear an earlier run first{}, or another --out",
               out.string(), listed(names), cfg.resume.empty() ? ", --resume " + out.string() + " to continue it" : "");
  GPUML_CHECK(foreign.empty(),
              "--out {} --overwrite: the directory holds {}, which a run does not write; --overwrite clears only an "
              "earlier run's files. Remove them or give another --out",
              out.string(), listed(foreign));
}

fs::path open_run_dir(const TrainConfig& cfg) {
  const fs::path out = cfg.out.empty() ? resumed_dir(cfg) : fs::path(cfg.out);
  if (out.empty()) return create_unique_dir("runs", default_run_name(cfg.model));
  check_run_dir(cfg);
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::create_directories(out, ec);
    GPUML_CHECK_KIND(ErrorKind::Io, !ec, "--out {}: cannot create the directory: {}", out.string(), ec.message());
    return out;
  }
  const fs::path resumed = resumed_dir(cfg);
  if (cfg.overwrite && !(!resumed.empty() && same_directory(out, resumed)))
    for (const fs::directory_entry& e : fs::directory_iterator(out)) {
      fs::remove(e.path(), ec);
      GPUML_CHECK_KIND(ErrorKind::Io, !ec, "--out {} --overwrite: cannot remove {}: {}", out.string(),
                       e.path().string(), ec.message());
    }
  return out;
}

fs::path create_unique_dir(const fs::path& parent, const std::string& name) {
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  GPUML_CHECK_KIND(ErrorKind::Io, !ec, "{}: cannot create the directory: {}", parent.string(), ec.message());
  for (int n = 1; n <= 10000; ++n) {
    fs::path candidate = parent / (n == 1 ? name : fmt::format("{}-{}", name, n));
    // mkdir(2) either creates it (ours alone) or fails with EEXIST (taken: try the next name).
    if (fs::create_directory(candidate, ec)) return candidate;
    GPUML_CHECK_KIND(ErrorKind::Io, !ec || fs::exists(candidate), "{}: cannot create the directory: {}",
                     candidate.string(), ec.message());
  }
  GPUML_FAIL(ErrorKind::Io, "{}: no free run directory name after 10000 tries", (parent / name).string());
}

}  // namespace gpuml
