// A checkpoint records the number of processes that trained it (data parallelism); --resume by
// another number carries the position of a partly done epoch over by rows and says why the data
// order changes, by the same number it changes nothing.
#include <gtest/gtest.h>

#include "io_temp_dir.h"
#include "train/checkpoint.h"
#include "train/resume.h"

namespace gpuml {
namespace {

Checkpoint small_checkpoint(int64_t world_size) {
  Checkpoint c;
  c.model = {{"w", Tensor::from_values({2}, {1.0, 2.0}, DType::f32)}};
  c.model_json = "{}";
  c.progress.step = 11;
  c.progress.loader_batch = 11;
  c.progress.world_size = world_size;
  return c;
}

TEST(ResumeWorldSize, TheCheckpointRecordsItAndOlderOnesReadAsOneProcess) {
  testing::TempDir dir;
  save_checkpoint(dir.path() / "three.safetensors", small_checkpoint(3));
  EXPECT_EQ(load_checkpoint(dir.path() / "three.safetensors").progress.world_size, 3);
  // A checkpoint written before the field: its metadata lacks it.
  SafetensorsFile file = load_safetensors(dir.path() / "three.safetensors");
  file.metadata.erase("gpuml.world_size");
  const NamedTensors& tensors = file.tensors;
  save_safetensors(dir.path() / "old.safetensors", tensors, file.metadata);
  EXPECT_EQ(load_checkpoint(dir.path() / "old.safetensors").progress.world_size, 1);
  save_checkpoint(dir.path() / "zero.safetensors", small_checkpoint(0));
  try {
    load_checkpoint(dir.path() / "zero.safetensors");
    FAIL() << "a checkpoint of 0 processes was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gpuml.world_size' = 0 is not a number of processes"),
              std::string::npos)
        << e.what();
  }
}

ResumePoint resume_point(int64_t world_size) {
  ResumePoint r{
      "runs/a/last.safetensors", small_checkpoint(world_size), {}, 1, nn::Model::preset("mlp")};
  r.config.batch_size = 64;
  return r;
}

TEST(ResumeWorldSize, TheSameNumberOfProcessesChangesNothing) {
  ResumePoint r = resume_point(2);
  EXPECT_EQ(adapt_to_world_size(r, 2), "");
  EXPECT_EQ(r.checkpoint.progress.loader_batch, 11);
  EXPECT_EQ(r.checkpoint.progress.world_size, 2);
}

TEST(ResumeWorldSize, AnotherNumberCarriesTheEpochOverByRowsAndSaysTheOrderChanges) {
  ResumePoint more = resume_point(1);
  EXPECT_EQ(adapt_to_world_size(more, 2),
            "--resume runs/a/last.safetensors: the run was trained by 1 process and continues in "
            "2: the global batch "
            "is now 128 rows instead of 64, so the data order changes and the result will differ "
            "from a run that "
            "never stopped (the epoch continues at batch 5 of the new size, after 704 rows)");
  EXPECT_EQ(more.checkpoint.progress.loader_batch, 5);  // 704 rows: 5 whole batches of 128
  EXPECT_EQ(more.checkpoint.progress.world_size, 2);
  EXPECT_EQ(more.checkpoint.progress.step, 11);  // optimizer steps are not rescaled

  ResumePoint fewer = resume_point(4);
  EXPECT_NE(adapt_to_world_size(fewer, 1).find("trained by 4 processes and continues in 1"),
            std::string::npos);
  EXPECT_EQ(fewer.checkpoint.progress.loader_batch, 44);
}

}  // namespace
}  // namespace gpuml
