// Writes TensorBoard event files, so `tensorboard --logdir runs/` shows training curves live.
//
//   TensorBoardWriter tb("runs/mnist");           // creates the directory if needed
//   tb.add_scalar("loss/train", step, loss);       // visible to TensorBoard right away
//
// Format: a TFRecord file named events.out.tfevents.<unix seconds>.<hostname> holding
// tensorflow.Event protos: first {wall_time, file_version: "brain.Event:2"}, then one
// {wall_time, step, summary {value {tag, simple_value}}} per scalar. Each record is
// u64 length (LE), masked CRC-32C of those 8 bytes, the proto bytes, masked CRC-32C of them.
//
// Unlike every other gpuml output this file is appended to, not written atomically: it has to
// be readable while training runs. Each record goes out in one write(2), so a reader (or a
// crash) sees whole records or a torn last record, which TensorBoard skips.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace gpuml {

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path& log_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // TensorBoard stores scalars as float32; `value` is rounded to it.
  void add_scalar(std::string_view tag, int64_t step, double value);
  // fsync: the records are already in the kernel after each add_scalar; this makes them durable.
  void sync();

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& event_bytes);

  std::filesystem::path path_;
  int fd_ = -1;
};

// The TFRecord frame around one record, exposed for tests and other TFRecord writers.
std::string tfrecord_frame(std::string_view data);

}  // namespace gpuml
