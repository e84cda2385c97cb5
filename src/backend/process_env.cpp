#include "backend/process_env.h"

#include <fmt/format.h>

#include <charconv>

#include "core/error.h"

extern char** environ;

namespace gpuml {

namespace {

struct LauncherVariables {
  const char* launcher;
  const char* label;  // for messages: "Open MPI"
  const char* rank;
  const char* size;
  const char* local_rank;
};

constexpr LauncherVariables kLaunchers[] = {
    {"open-mpi", "Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"slurm", "Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"torchrun", "torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

const std::string* find(const Environment& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

int parse_count(const Environment& env, const char* name, const char* label, int fallback) {
  const std::string* text = find(env, name);
  if (text == nullptr) return fallback;
  int value = -1;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, value);
  GPUML_CHECK(ec == std::errc() && ptr == end && value >= 0,
              "{} environment: {}='{}' is not a non-negative integer", label, name, *text);
  return value;
}

}  // namespace

ProcessPlacement detect_process_placement(const Environment& env) {
  ProcessPlacement p;
  for (const LauncherVariables& l : kLaunchers) {
    const bool has_rank = find(env, l.rank) != nullptr, has_size = find(env, l.size) != nullptr;
    if (!has_rank && !has_size) continue;
    GPUML_CHECK(has_rank && has_size, "{} environment: {} is set but {} is not; a launcher sets both", l.label,
                has_rank ? l.rank : l.size, has_rank ? l.size : l.rank);
    p.launcher = l.launcher;
    p.rank = parse_count(env, l.rank, l.label, 0);
    p.world_size = parse_count(env, l.size, l.label, 1);
    GPUML_CHECK(p.world_size >= 1 && p.rank < p.world_size, "{} environment: {}={} is not a rank of {}={}", l.label,
                l.rank, p.rank, l.size, p.world_size);
    // A launcher without a local rank (torchrun always sets it; a hand-made environment may not):
    // one process per machine is the safe guess for picking a GPU.
    p.local_rank = parse_count(env, l.local_rank, l.label, 0);
    if (std::string_view(l.launcher) == "torchrun") {
      if (const std::string* addr = find(env, "MASTER_ADDR")) p.master_addr = *addr;
      p.master_port = parse_count(env, "MASTER_PORT", l.label, 0);
      GPUML_CHECK(p.master_port <= 65535, "torchrun environment: MASTER_PORT={} is not a port", p.master_port);
    }
    return p;
  }
  return p;
}

Environment environment_of_this_process() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::string describe_placement(const ProcessPlacement& p) {
  if (p.launcher == "none")
    return "one process (no OMPI_COMM_WORLD_*, SLURM_PROCID/SLURM_NTASKS or RANK/WORLD_SIZE variables)";
  std::string from = p.launcher == "open-mpi" ? "Open MPI: OMPI_COMM_WORLD_*"
                     : p.launcher == "slurm"  ? "Slurm: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID"
                                              : "torchrun: RANK, WORLD_SIZE, LOCAL_RANK";
  std::string rendezvous =
      p.master_addr.empty() && p.master_port == 0
          ? std::string()
          : fmt::format(", rendezvous {}:{}", p.master_addr.empty() ? "?" : p.master_addr, p.master_port);
  return fmt::format("rank {} of {}, local rank {} ({}){}", p.rank, p.world_size, p.local_rank, from, rendezvous);
}

}  // namespace gpuml
