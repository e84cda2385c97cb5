// Trainer::evaluate (the library's, which the C++ and Python APIs call) with several ranks (label
// `dist`; the ranks are threads of this process, tests/thread_communicator.h): each rank evaluates
// only its part of the rows (BatchPart's rule, as the evaluation inside fit() and the CLI's), the
// sums are added over the ranks in float64, and every rank gets one process's loss and accuracy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "thread_communicator.h"
#include "train/trainer.h"
#include "blobs_dataset.h"

namespace gpuml {
namespace {

using testing::blobs;

TrainerInputs mlp_inputs() {
  TrainerInputs in;
  in.model = nn::Model::from_json(nlohmann::json::parse(
      R"({"input_shape": [20], "layers": [{"type": "Linear", "in_features": 20, "out_features": 32},
          {"type": "ReLU"}, {"type": "Linear", "in_features": 32, "out_features": 4}]})"));
  in.train = blobs(256, 7);
  return in;
}

TrainConfig config(int64_t batch_size) {
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = batch_size;
  cfg.threads = 1;
  cfg.seed = 3;
  cfg.device = "cpu";
  cfg.deterministic = true;
  return cfg;
}

// A thread rank that records the rows of the evaluation sums it contributes (TaskSums::rows, the
// fourth float64 of sum_over_ranks' all-gather): how many rows this rank evaluated itself.
class RecordingCommunicator final : public Communicator {
 public:
  RecordingCommunicator(std::shared_ptr<testing::ThreadGroup> group, int rank) : inner_(std::move(group), rank) {}
  std::string_view name() const override { return "recording threads"; }
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::string description() const override { return inner_.description(); }
  std::vector<int64_t> rows_evaluated;  // one entry per evaluation

 protected:
  void do_all_reduce(std::span<float> values, ReduceOp op, const CollectiveCall& call) override {
    inner_.all_reduce(values, op, call);
  }
  void do_broadcast(std::span<std::byte> bytes, int root, const CollectiveCall& call) override {
    inner_.broadcast(bytes, root, call);
  }
  void do_all_gather(std::span<const std::byte> mine, std::span<std::byte> all, const CollectiveCall& call) override {
    if (call.what == "evaluation sums" && mine.size() == 4 * sizeof(double)) {
      double rows;
      std::memcpy(&rows, mine.data() + 3 * sizeof(double), sizeof rows);
      rows_evaluated.push_back(static_cast<int64_t>(rows));
    }
    inner_.all_gather(mine, all, call);
  }
  void do_reduce_scatter(std::span<const float> all, std::span<float> mine, ReduceOp op,
                         const CollectiveCall& call) override {
    inner_.reduce_scatter(all, mine, op, call);
  }
  void do_barrier(const CollectiveCall& call) override { inner_.barrier(call); }

 private:
  testing::ThreadCommunicator inner_;
};

// 2 ranks x batch 32 against 1 process x batch 64 (the same global batch, so the same initial
// weights: rank 0's, broadcast), evaluating 101 rows (an odd count: rank 0 takes rows 0..49, rank
// 1 rows 50..100). The loss is a sum of the same per-row float terms in another grouping, added
// in float64: within 1e-6 relative (measured 4.7e-8); the accuracy counts rows, so it is equal.
TEST(TrainerEvaluate, TwoRanksEachEvaluateTheirPartAndGetOneProcesssFigures) {
  const data::InMemoryDataset test = blobs(101, 8);
  Trainer one(config(64), mlp_inputs());
  const TaskSums whole = one.evaluate(test);
  ASSERT_EQ(whole.rows, 101);

  auto group = std::make_shared<testing::ThreadGroup>(2);
  std::vector<std::shared_ptr<RecordingCommunicator>> comms;
  for (int r = 0; r < 2; ++r) comms.push_back(std::make_shared<RecordingCommunicator>(group, r));
  std::vector<TaskSums> sums(2);
  std::vector<std::exception_ptr> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      try {
        DataParallel parallel;
        parallel.communicator = comms[static_cast<size_t>(r)];
        parallel.collective_timeout = std::chrono::seconds(30);
        Trainer trainer(config(32), mlp_inputs(), parallel);
        sums[static_cast<size_t>(r)] = trainer.evaluate(test);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : ranks) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  EXPECT_EQ(comms[0]->rows_evaluated, std::vector<int64_t>{50}) << "rank 0 evaluates rows 0..49 only";
  EXPECT_EQ(comms[1]->rows_evaluated, std::vector<int64_t>{51}) << "rank 1 evaluates rows 50..100 only";
  const Task& task = one.task();
  for (const TaskSums& s : sums) {
    EXPECT_EQ(s.rows, whole.rows);
    EXPECT_EQ(s.score, whole.score);  // correct rows
    EXPECT_EQ(s.weight, whole.weight);
    EXPECT_NEAR(task.mean_loss(s), task.mean_loss(whole), 1e-6 * task.mean_loss(whole));
    EXPECT_EQ(task.metric(s), task.metric(whole));
  }
  EXPECT_EQ(sums[0].loss_sum, sums[1].loss_sum) << "every rank gets the same figures";
  RecordProperty("loss_relative_difference",
                 fmt::format("{:.3g}", std::abs(task.mean_loss(sums[0]) / task.mean_loss(whole) - 1)));
}

}  // namespace
}  // namespace gpuml
