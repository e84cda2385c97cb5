#include "graph/arena.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <tuple>

namespace gpuml {

namespace {

constexpr size_t kArenaAlignment = 64;

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

// Creates the arenas and returns each one's member values, with their bytes set.
std::vector<std::vector<int>> group_into_arenas(Plan& plan, const Placement& placement) {
  std::map<Device, int, bool (*)(const Device&, const Device&)> arena_of(
      [](const Device& a, const Device& b) {
        return std::tie(a.type, a.index) < std::tie(b.type, b.index);
      });
  std::vector<std::vector<int>> members;
  for (int i = 0; i < static_cast<int>(plan.values.size()); ++i) {
    PlanValue& v = plan.values[i];
    if (v.home != ValueHome::Arena) continue;
    Device d = v.backend->device();
    auto [it, fresh] = arena_of.try_emplace(d, static_cast<int>(plan.arenas.size()));
    if (fresh) {
      ArenaPlan a;
      a.device = d;
      a.allocator = placement.allocator_of(d);
      plan.arenas.push_back(a);
      members.emplace_back();
    }
    v.arena = it->second;
    // Empty tensors still get a distinct range, so every buffer has a real address.
    v.bytes = round_up(std::max<size_t>(1, numel(v.type.shape) * dtype_size(v.type.dtype)),
                       kArenaAlignment);
    members[v.arena].push_back(i);
  }
  return members;
}

// Greedy: buffers in `order`, each into the smallest gap left by the already placed buffers whose
// lifetimes overlap its own, else after the highest of them. Returns the peak; sets offsets[id].
size_t pack_in_order(const Plan& plan, const std::vector<int>& order,
                     std::vector<size_t>& offsets) {
  size_t peak = 0;
  std::vector<int> placed;
  for (int id : order) {
    const PlanValue& v = plan.values[id];
    std::vector<std::pair<size_t, size_t>> live;  // (offset, end) of overlapping placed buffers
    for (int p : placed) {
      const PlanValue& o = plan.values[p];
      if (o.first_step <= v.last_step && v.first_step <= o.last_step)
        live.emplace_back(offsets[p], offsets[p] + o.bytes);
    }
    std::sort(live.begin(), live.end());
    size_t end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
    for (auto [begin, stop] : live) {
      if (begin > end && begin - end >= v.bytes && begin - end < best_gap) {
        best_gap = begin - end;
        best = end;
      }
      end = std::max(end, stop);
    }
    offsets[id] = best != SIZE_MAX ? best : end;
    peak = std::max(peak, offsets[id] + v.bytes);
    placed.push_back(id);
  }
  return peak;
}

// Which order packs best depends on the graph (a fused step that removes a buffer can leave a
// worse gap for one order), so five are tried: biggest first, longest-lived first, in the order
// the steps write them, largest bytes x lifetime first, and last-read first. Each sorts by a key,
// largest first (stable: ties keep value order).
std::vector<std::vector<int>> packing_orders(const Plan& plan, const std::vector<int>& ids) {
  auto by = [&](auto key) {
    std::vector<int> order = ids;
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return key(x) > key(y); });
    return order;
  };
  auto bytes = [&](int x) { return plan.values[x].bytes; };
  auto span = [&](int x) {
    return static_cast<size_t>(plan.values[x].last_step - plan.values[x].first_step);
  };
  return {
      by(bytes),
      by([&](int x) { return std::pair(span(x), bytes(x)); }),
      by([&](int x) { return -plan.values[x].first_step; }),
      by([&](int x) { return bytes(x) * (span(x) + 1); }),
      by([&](int x) { return plan.values[x].last_step; }),
  };
}

// Packs one arena's members: each order in turn, keeping the lowest peak (the first of equals).
void pack_arena(Plan& plan, ArenaPlan& arena, const std::vector<int>& ids, bool reuse_memory) {
  for (int id : ids) arena.unshared_bytes += plan.values[id].bytes;
  if (!reuse_memory) {
    size_t next = 0;
    for (int id : ids) {
      plan.values[id].offset = next;
      next += plan.values[id].bytes;
    }
    arena.peak_bytes = next;
    return;
  }
  std::vector<size_t> offsets(plan.values.size()), best_offsets;
  arena.peak_bytes = SIZE_MAX;
  for (const std::vector<int>& order : packing_orders(plan, ids)) {
    const size_t peak = pack_in_order(plan, order, offsets);
    if (peak < arena.peak_bytes) {
      arena.peak_bytes = peak;
      best_offsets = offsets;
    }
  }
  for (int id : ids) plan.values[id].offset = best_offsets[id];
}

}  // namespace

void compute_lifetimes(Plan& plan) {
  auto use = [&](int value, int step) {
    PlanValue& root = plan.values[plan.root_of(value)];
    if (root.home == ValueHome::Arena) root.last_step = std::max(root.last_step, step);
  };
  for (int s = 0; s < static_cast<int>(plan.steps.size()); ++s) {
    const PlanStep& step = plan.steps[s];
    for (int in : step.inputs) use(in, s);
    for (int k = 0; k < step.output_count; ++k) {
      PlanValue& out = plan.values[step.output + k];
      if (out.home == ValueHome::Arena) out.first_step = out.last_step = s;
    }
  }
  for (int v : plan.outputs) use(v, static_cast<int>(plan.steps.size()));
}

void pack_arenas(Plan& plan, const Placement& placement, bool reuse_memory) {
  std::vector<std::vector<int>> members = group_into_arenas(plan, placement);
  for (size_t a = 0; a < plan.arenas.size(); ++a)
    pack_arena(plan, plan.arenas[a], members[a], reuse_memory);
}

}  // namespace gpuml
