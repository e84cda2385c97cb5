#include "train/data_parallel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace gpuml {

namespace {

// The first difference between rank 0's JSON and this rank's, as "field: ours vs theirs", or "".
std::string first_difference(const nlohmann::json& mine, const nlohmann::json& root, const std::string& prefix,
                             int rank) {
  if (mine.is_object() && root.is_object()) {
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (!mine.contains(it.key())) return fmt::format("rank {} has no {}, rank 0 has {}", rank, key, it.value().dump());
      std::string d = first_difference(mine.at(it.key()), it.value(), key, rank);
      if (!d.empty()) return d;
    }
    for (auto it = mine.begin(); it != mine.end(); ++it)
      if (!root.contains(it.key()))
        return fmt::format("rank {} has {} {}, rank 0 has none", rank, prefix.empty() ? it.key() : prefix + "." + it.key(),
                           it.value().dump());
    return "";
  }
  if (mine == root) return "";
  auto shorten = [](std::string s) { return s.size() > 80 ? s.substr(0, 77) + "..." : s; };
  return fmt::format("rank {} has {} {}, rank 0 has {}", rank, prefix.empty() ? "the value" : prefix,
                     shorten(mine.dump()), shorten(root.dump()));
}

std::string broadcast_text(Communicator& comm, const std::string& mine, const CollectiveCall& call) {
  uint64_t size = mine.size();
  comm.broadcast({reinterpret_cast<std::byte*>(&size), sizeof size}, 0, call);
  std::string text = comm.rank() == 0 ? mine : std::string(size, '\0');
  comm.broadcast({reinterpret_cast<std::byte*>(text.data()), text.size()}, 0, call);
  return text;
}

}  // namespace

void check_ranks_agree(Communicator& comm, const nlohmann::json& config, const nlohmann::json& model,
                       std::chrono::milliseconds timeout) {
  if (comm.world_size() <= 1) return;
  nlohmann::json mine = {{"config", config}, {"model", model}};
  for (const char* per_machine : {"device", "data_memory_limit"}) mine["config"].erase(per_machine);
  const CollectiveCall call{"rank 0's configuration", timeout};
  const nlohmann::json root = nlohmann::json::parse(broadcast_text(comm, mine.dump(), call));
  std::string difference = first_difference(mine.at("config"), root.at("config"), "", comm.rank());
  if (difference.empty()) difference = first_difference(mine.at("model"), root.at("model"), "model", comm.rank());
  // Every rank learns every rank's difference (a fixed-size text each), so that whichever rank
  // ends the job first prints the whole story: the ranks may end it at the same moment, and then
  // only one message gets out.
  constexpr size_t kTextBytes = 240;
  std::vector<std::byte> mine_text(kTextBytes), all_text(kTextBytes * static_cast<size_t>(comm.world_size()));
  std::memcpy(mine_text.data(), difference.data(), std::min(difference.size(), kTextBytes - 1));
  comm.all_gather(mine_text, all_text, {"whether the ranks' configurations differ", timeout});
  std::vector<std::string> differences;
  for (int r = 0; r < comm.world_size(); ++r) {
    const char* text = reinterpret_cast<const char*>(all_text.data()) + static_cast<size_t>(r) * kTextBytes;
    if (text[0] != '\0') differences.emplace_back(text, strnlen(text, kTextBytes));
  }
  GPUML_CHECK(differences.empty(), "the ranks were started with different runs: {}; start every rank with the same "
              "flags, model and data", fmt::join(differences, "; "));
}

TaskSums sum_over_ranks(Communicator& comm, const TaskSums& mine, std::chrono::milliseconds timeout) {
  const double values[4] = {mine.loss_sum, mine.weight, mine.score, static_cast<double>(mine.rows)};
  std::vector<double> all(4 * static_cast<size_t>(comm.world_size()));
  comm.all_gather(std::as_bytes(std::span(values)), std::as_writable_bytes(std::span(all)),
                  {"evaluation sums", timeout});
  TaskSums total;
  for (size_t r = 0; r < all.size(); r += 4) {
    total.loss_sum += all[r];
    total.weight += all[r + 1];
    total.score += all[r + 2];
    total.rows += static_cast<int64_t>(all[r + 3]);
  }
  return total;
}

}  // namespace gpuml
