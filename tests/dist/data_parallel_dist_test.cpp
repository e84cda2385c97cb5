// Data parallelism under mpirun (label `dist`): 2 ranks x batch 64 end with the weights of
// 1 process x batch 128, also with a gradient bucket per parameter (mlp, cnn), and with
// --sync-batchnorm beside several buckets (weights and running statistics); a stalled or killed
// rank ends the job within the deadline with a message naming the rank (also when the stalled
// peer is met inside one of many buckets); --zero 1 writes the checkpoint of the unsplit update
// and resumes exactly;
// ranks started with different flags, or a different GPUML_COMM, are refused naming it.
//
// Tolerance of the equivalence: 1e-5 absolute on every weight after 20 Adam steps (lr 1e-3).
// The two runs add the same float terms in another order (each rank sums 64 rows' gradients and
// the all-reduce adds the two sums; one process sums 128 rows in one oneDNN reduction), which
// differs by a few ulps per step; Adam divides by sqrt(v), so where a gradient is near zero that
// difference can move a weight by a visible fraction of lr. Measured: 9.6e-7 at most. The control
// (1 process x batch 64, another run) differs by far more than the tolerance, so the check tells.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "e2e_support.h"
#include "dist_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::kMpirun;
using testing::max_difference;
using testing::mpi_ready;
using testing::q;
using testing::run_shell;
using testing::TempDir;

std::string train_args(const fs::path& out, int batch, const std::string& model = "mlp") {
  return fmt::format("train --model {} --batch-size {} --steps 20 --threads 1 --deterministic --seed 1 --quiet --out {}",
                     model, batch, q(out));
}

TEST(DataParallel, TwoRanksOfBatch64TrainAsOneProcessOfBatch128) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  const fs::path one = dir.path() / "one", two = dir.path() / "two", control = dir.path() / "control";
  auto r = testing::run_gpuml(train_args(one, 128));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_shell(fmt::format("{} -np 2 {} {}", kMpirun, q(GPUML_CLI_PATH), train_args(two, 64)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Rank 0 alone reports and writes: one "done" line, one run directory.
  EXPECT_EQ(r.output.find("done:"), r.output.rfind("done:")) << r.output;
  const double difference = max_difference(one / "model.safetensors", two / "model.safetensors");
  EXPECT_LT(difference, 1e-5);
  RecordProperty("max_weight_difference", fmt::format("{:.3g}", difference));
  r = testing::run_gpuml(train_args(control, 64));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(max_difference(one / "model.safetensors", control / "model.safetensors"), 1e-4)
      << "the control run is as close as the data-parallel one: the check cannot tell";
}

// --bucket-mb 0.0001 (100 bytes): every parameter's gradient is a bucket of its own, all-reduced
// by the communication thread while backward goes on; the weights are the same as one process's.
void expect_bucketed_two_ranks_train_as_one(const std::string& model, int params) {
  TempDir dir;
  const fs::path one = dir.path() / "one", two = dir.path() / "two";
  auto r = testing::run_gpuml(train_args(one, 128, model));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_shell(fmt::format("{} -np 2 {} {} --bucket-mb 0.0001", kMpirun, q(GPUML_CLI_PATH), train_args(two, 64, model)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(fmt::format("all-reduce (rank 0 of 2, mpi): {} buckets per step", params)), std::string::npos)
      << r.output;
  const double difference = max_difference(one / "model.safetensors", two / "model.safetensors");
  EXPECT_LT(difference, 1e-5);
  ::testing::Test::RecordProperty("max_weight_difference", fmt::format("{:.3g}", difference));
}

TEST(DataParallel, TwoRanksWithABucketPerParameterTrainAsOneProcessMlp) {
  REQUIRE_READY(mpi_ready);
  expect_bucketed_two_ranks_train_as_one("mlp", 6);
}

TEST(DataParallel, TwoRanksWithABucketPerParameterTrainAsOneProcessCnn) {
  REQUIRE_READY(mpi_ready);
  expect_bucketed_two_ranks_train_as_one("cnn", 8);
}

// --zero 1: each rank updates half the state's columns and the ranks all-gather the parameters;
// the checkpoint (parameters and the optimizer state, gathered before rank 0 writes it) holds the
// same bits as without the split. Adam (the gradient reduce-scattered: MPI's ring of messages),
// and AdamW with decay and clipping (all-reduced: the clip norm is the whole gradient's).
TEST(DataParallel, ZeroOneSplitsTheUpdateAndWritesTheSameCheckpoint) {
  REQUIRE_READY(mpi_ready);
  for (const std::string recipe : {"", " --optimizer adamw --weight-decay 0.1 --clip-grad-norm 0.5"}) {
    SCOPED_TRACE("recipe:" + recipe);
    TempDir dir;
    const fs::path whole = dir.path() / "whole", split = dir.path() / "split";
    auto r = run_shell(fmt::format("{} -np 2 {} {}{}", kMpirun, q(GPUML_CLI_PATH), train_args(whole, 64), recipe));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_shell(fmt::format("{} -np 2 {} {}{} --zero 1", kMpirun, q(GPUML_CLI_PATH), train_args(split, 64), recipe));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(max_difference(whole / "last.safetensors", split / "last.safetensors"), 0.0);
    EXPECT_EQ(max_difference(whole / "model.safetensors", split / "model.safetensors"), 0.0);
  }
}

// Three ranks: MPI's ring reduce-scatter over two exchanges. Its sums run in another order than
// Open MPI's ring all-reduce, so the weights agree to rounding, not bit for bit (measured 3.4e-7
// after 200 steps; 20 here).
TEST(DataParallel, ZeroOneOnThreeRanksTrainsAsWithout) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  const fs::path whole = dir.path() / "whole", split = dir.path() / "split";
  auto r = run_shell(fmt::format("{} -np 3 {} {}", kMpirun, q(GPUML_CLI_PATH), train_args(whole, 40)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_shell(fmt::format("{} -np 3 {} {} --zero 1", kMpirun, q(GPUML_CLI_PATH), train_args(split, 40)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double difference = max_difference(whole / "last.safetensors", split / "last.safetensors");
  EXPECT_LT(difference, 1e-5);
  RecordProperty("max_difference", fmt::format("{:.3g}", difference));
}

// A run stopped under --zero 1 (its checkpoint written from the gathered shares) resumes to the
// bits of a run that never stopped, with --zero 1 or without it (the flag changes no number).
TEST(DataParallel, ZeroOneStoppedRunResumesExactlyWithOrWithoutIt) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  const fs::path straight = dir.path() / "straight";
  auto r = run_shell(fmt::format("{} -np 2 {} {} --zero 1", kMpirun, q(GPUML_CLI_PATH), train_args(straight, 64)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const std::string resume_flags : {" --zero 1", ""}) {
    SCOPED_TRACE("resumed with:" + resume_flags);
    const fs::path stopped = dir.path() / ("stopped" + std::to_string(resume_flags.size()));
    r = run_shell(fmt::format("{} -np 2 {} {} --zero 1 --max-steps 10", kMpirun, q(GPUML_CLI_PATH),
                              train_args(stopped, 64)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_GT(max_difference(straight / "last.safetensors", stopped / "last.safetensors"), 0.0) << "did not stop";
    r = run_shell(fmt::format("{} -np 2 {} train --quiet --threads 1 --resume {}{}", kMpirun, q(GPUML_CLI_PATH),
                              q(stopped / "last.safetensors"), resume_flags));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(max_difference(straight / "model.safetensors", stopped / "model.safetensors"), 0.0);
  }
}

// BatchNorm (a model JSON with BatchNorm2d and BatchNorm1d): with --sync-batchnorm the ranks'
// statistics are over the global batch, so the weights AND the running statistics (in
// model.safetensors) are one process's (tolerance: dist_support.h). Without it (DDP's default)
// each rank normalises its own 64 rows: the control, farther than the tolerance, which rank 0
// alone writes, its running statistics broadcast to the other rank after every step
// (tests/unit/sync_batch_norm_test.cpp checks the ranks' agreement).
TEST(DataParallel, SyncBatchNormTwoRanksOfBatch64TrainAsOneProcessOfBatch128) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  const std::string model = testing::write_batch_norm_model(dir.path());
  const fs::path one = dir.path() / "one", two = dir.path() / "two", local = dir.path() / "local";
  auto args = [&](const fs::path& out, int batch) {
    return fmt::format("train --model {} {} --batch-size {} --steps 20 --threads 1 --deterministic --seed 1 --quiet --out {}",
                       q(model), testing::kSyncBatchNormOptimizer, batch, q(out));
  };
  auto r = testing::run_gpuml(args(one, 128));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Small buckets (several per step) beside the graph's all_reduce_sums: held until the gradient
  // graph's run ends (ModelRunner), so none of them runs while backward does.
  r = run_shell(fmt::format("{} -np 2 {} {} --sync-batchnorm --bucket-mb 0.0001", kMpirun, q(GPUML_CLI_PATH),
                            args(two, 64)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  testing::expect_buckets_held_after_backward(r.output, "mpi");
  const double difference = testing::max_relative_difference(one / "model.safetensors", two / "model.safetensors");
  EXPECT_LT(difference, testing::kSyncBatchNormTolerance);
  RecordProperty("max_weight_and_statistics_difference", fmt::format("{:.3g}", difference));
  EXPECT_NE(testing::read_text(two / "config.json").find("\"sync_batchnorm\": true"), std::string::npos);
  const SafetensorsFile saved = load_safetensors(two / "model.safetensors");
  EXPECT_EQ(saved.at("1.num_batches_tracked").to_doubles(), std::vector<double>{20});

  r = run_shell(fmt::format("{} -np 2 {} {}", kMpirun, q(GPUML_CLI_PATH), args(local, 64)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(testing::max_relative_difference(one / "model.safetensors", local / "model.safetensors"),
            100 * testing::kSyncBatchNormTolerance)
      << "local statistics train as close as synchronised ones: the check cannot tell";
}

TEST(DataParallel, RanksStartedWithDifferentFlagsAreRefusedNamingTheFlag) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  auto r = run_shell(fmt::format("timeout 120 {} -np 1 {} {} : -np 1 {} {}", kMpirun, q(GPUML_CLI_PATH),
                                 train_args(dir.path() / "run", 64), q(GPUML_CLI_PATH),
                                 train_args(dir.path() / "run", 32)));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("rank 1 has batch_size 32, rank 0 has 64"), std::string::npos) << r.output;
}

// GPUML_COMM (the gradient engine) is compared with the flags: rank 1 asks for host memory, rank 0
// for the default. On a GPU the two would pick different engines (NCCL and MPI) and meet in
// different collectives; on the host both choices train alike, so only the check refuses them.
TEST(DataParallel, RanksStartedWithDifferentGpumlCommAreRefusedNamingIt) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  auto r = run_shell(fmt::format("timeout 120 {} -np 1 env -u GPUML_COMM {} {} : -np 1 env GPUML_COMM=host {} {}",
                                 kMpirun, q(GPUML_CLI_PATH), train_args(dir.path() / "run", 64), q(GPUML_CLI_PATH),
                                 train_args(dir.path() / "run", 64)));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("rank 1 has GPUML_COMM \"host\", rank 0 has \"auto\""), std::string::npos) << r.output;
}

// Starts a long 2-rank run, sends `signal` to rank 1 once it trains, and returns the output and
// how long the job took to end after the signal.
struct FaultRun {
  testing::CommandResult result;
  double seconds_after_signal = 0;
};
// `model`: the --model argument and any further flags.
FaultRun run_with_rank1(const char* signal, const std::string& model = "mlp") {
  TempDir dir;
  const fs::path out = dir.path() / "fault-run";
  const std::string script = fmt::format(
      R"sh(timeout 120 {mpirun} -np 2 {gpuml} train --model {model} --epochs 100 --threads 1 --dist-timeout 3 --quiet --out {out} > {log} 2>&1 &
job=$!
pid=
for i in $(seq 200); do
  for c in $(pgrep -f -- "--out {out_plain}"); do
    tr '\0' '\n' < /proc/$c/environ 2> /dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && pid=$c
  done
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || {{ echo "rank 1 never started"; kill $job; cat {log}; exit 99; }}
sleep 2
kill -{signal} $pid
start=$(date +%s%N)
wait $job
echo "exit $? after_ms $(( ($(date +%s%N) - start) / 1000000 ))"
cat {log})sh",
      fmt::arg("mpirun", kMpirun), fmt::arg("gpuml", q(GPUML_CLI_PATH)), fmt::arg("out", q(out)), fmt::arg("out_plain", out.string()),
      fmt::arg("log", q(dir.path() / "log")), fmt::arg("signal", signal), fmt::arg("model", model));
  FaultRun run;
  run.result = run_shell(script);
  size_t at = run.result.output.find("after_ms ");
  if (at != std::string::npos) run.seconds_after_signal = std::atof(run.result.output.c_str() + at + 9) / 1000;
  return run;
}

TEST(DataParallel, StalledRankEndsTheJobWithinTheDeadlineNamingItAndTheCollective) {
  REQUIRE_READY(mpi_ready);
  FaultRun run = run_with_rank1("STOP");
  const std::string& out = run.result.output;
  ASSERT_EQ(out.find("rank 1 never started"), std::string::npos) << out;
  EXPECT_EQ(out.find("exit 0 "), std::string::npos) << out;
  EXPECT_TRUE(testing::names_training_collective(out, "waited")) << out;
  EXPECT_NE(out.find("for rank 1"), std::string::npos) << out;
  // --dist-timeout 3, plus the job's teardown.
  EXPECT_GT(run.seconds_after_signal, 2.5) << out;
  EXPECT_LT(run.seconds_after_signal, 30) << out;
}

// A bucket per parameter: the communication thread meets the stalled peer inside some bucket's
// all-reduce, and the job still ends within the deadline with the message.
TEST(DataParallel, StalledRankWithManyBucketsEndsTheJobWithinTheDeadline) {
  REQUIRE_READY(mpi_ready);
  FaultRun run = run_with_rank1("STOP", "mlp --bucket-mb 0.0001");
  const std::string& out = run.result.output;
  ASSERT_EQ(out.find("rank 1 never started"), std::string::npos) << out;
  EXPECT_EQ(out.find("exit 0 "), std::string::npos) << out;
  EXPECT_NE(out.find("rank 0 of 2: all_reduce of gradients (bucket "), std::string::npos) << out;
  EXPECT_NE(out.find("for rank 1"), std::string::npos) << out;
  EXPECT_GT(run.seconds_after_signal, 2.5) << out;
  EXPECT_LT(run.seconds_after_signal, 30) << out;
}

// With --sync-batchnorm most of a step's collectives run inside its graph (all_reduce_sum, four
// per BatchNorm layer), and the gradient buckets (several here) follow the graph's run; a stalled
// rank still ends the job at the deadline, naming the collective rank 0 waited in: one of the
// graph's, or a bucket's all-reduce, depending on where in the step rank 1 stopped (recorded as a
// property).
TEST(DataParallel, StalledRankDuringSyncBatchNormEndsTheJobWithinTheDeadline) {
  REQUIRE_READY(mpi_ready);
  TempDir dir;
  FaultRun run =
      run_with_rank1("STOP", q(testing::write_batch_norm_model(dir.path())) + " --sync-batchnorm --bucket-mb 0.0001");
  const std::string& out = run.result.output;
  ASSERT_EQ(out.find("rank 1 never started"), std::string::npos) << out;
  EXPECT_EQ(out.find("exit 0 "), std::string::npos) << out;
  std::smatch waited;
  EXPECT_TRUE(std::regex_search(out, waited,
                                std::regex("rank 0 of 2: (all_gather of an all_reduce_sum op's values \\(synchronised "
                                           "BatchNorm statistics\\)|all_reduce of gradients \\(bucket \\d+ of \\d+\\)) waited")))
      << out;
  if (!waited.empty()) RecordProperty("collective", waited[1].str());
  EXPECT_NE(out.find("for rank 1"), std::string::npos) << out;
  EXPECT_GT(run.seconds_after_signal, 2.5) << out;
  EXPECT_LT(run.seconds_after_signal, 30) << out;
}

TEST(DataParallel, KilledRankEndsTheJobNamingIt) {
  REQUIRE_READY(mpi_ready);
  FaultRun run = run_with_rank1("KILL");
  const std::string& out = run.result.output;
  ASSERT_EQ(out.find("rank 1 never started"), std::string::npos) << out;
  EXPECT_EQ(out.find("exit 0 "), std::string::npos) << out;
  EXPECT_NE(out.find("process rank 1"), std::string::npos) << out;  // mpirun's "noticed that process rank 1 ..."
  EXPECT_LT(run.seconds_after_signal, 30) << out;
}

}  // namespace
}  // namespace gpuml
