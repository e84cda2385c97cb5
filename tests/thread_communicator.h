// Ranks as threads of one test process: a Communicator whose collectives meet in shared memory,
// so that data-parallel code (ModelRunner, graphs with all_reduce_sum) runs its N ranks side by
// side in a unit test, without mpirun or sockets. Each collective waits at most its call's
// timeout for the other threads, then throws (a failing rank never hangs the test).
//
//   auto group = std::make_shared<testing::ThreadGroup>(2);
//   std::thread other([&] { testing::ThreadCommunicator(group, 1).all_reduce(v1, ReduceOp::sum, call); });
//   testing::ThreadCommunicator(group, 0).all_reduce(v0, ReduceOp::sum, call);
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "backend/communicator.h"

namespace gpuml::testing {

// What the ranks of one group share: each collective is one exchange of every rank's bytes.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), posted_(static_cast<size_t>(size)) {}
  int size() const { return size_; }

  // Every rank's `mine`, in rank order, once all ranks have posted theirs for this exchange.
  std::vector<std::vector<std::byte>> exchange(int rank, std::span<const std::byte> mine, const CollectiveCall& call,
                                               std::string_view collective) {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t generation = generation_;
    posted_[static_cast<size_t>(rank)].assign(mine.begin(), mine.end());
    if (++arrived_ == size_) {
      // A rank cannot post for the next exchange before every rank has left this one's wait
      // (the next needs all of them), so result_ stays until each has copied it.
      result_ = posted_;
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
      return result_;
    }
    if (!changed_.wait_for(lock, call.timeout, [&] { return generation_ != generation; }))
      GPUML_FAIL(ErrorKind::Io, "thread rank {} of {}: {} of {} waited {} ms for the other ranks", rank, size_,
                 collective, call.what, call.timeout.count());
    return result_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int size_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<std::vector<std::byte>> posted_, result_;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank) : group_(std::move(group)), rank_(rank) {}
  std::string_view name() const override { return "threads"; }
  int rank() const override { return rank_; }
  int world_size() const override { return group_->size(); }
  std::string description() const override { return "threads of one test process"; }

  void all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) override {
    auto all = group_->exchange(rank_, std::as_bytes(values), call, "all_reduce");
    reduce_into(all, 0, values, op);
  }
  void broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) override {
    auto all = group_->exchange(rank_, bytes, call, "broadcast");
    std::memcpy(bytes.data(), all[static_cast<size_t>(root)].data(), bytes.size());
  }
  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) override {
    auto parts = group_->exchange(rank_, mine, call, "all_gather");
    for (size_t r = 0; r < parts.size(); ++r) std::memcpy(all.data() + r * mine.size(), parts[r].data(), mine.size());
  }
  void reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                      const CollectiveCall& call) override {
    auto parts = group_->exchange(rank_, std::as_bytes(all), call, "reduce_scatter");
    reduce_into(parts, static_cast<size_t>(rank_) * mine.size(), mine, op);
  }
  void barrier(const CollectiveCall& call) override { group_->exchange(rank_, {}, call, "barrier"); }

 private:
  // out[i] = op over the ranks of their float at `first` + i, in rank order.
  void reduce_into(const std::vector<std::vector<std::byte>>& parts, size_t first, std::span<float> out,
                   ReduceOp op) const {
    for (size_t i = 0; i < out.size(); ++i) {
      float acc = 0;
      for (size_t r = 0; r < parts.size(); ++r) {
        float v;
        std::memcpy(&v, parts[r].data() + (first + i) * sizeof(float), sizeof(float));
        acc = r == 0 ? v : op == ReduceOp::max ? std::max(acc, v) : acc + v;
      }
      out[i] = op == ReduceOp::average ? acc / static_cast<float>(parts.size()) : acc;
    }
  }
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

}  // namespace gpuml::testing
