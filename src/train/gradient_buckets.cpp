#include "train/gradient_buckets.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace gpuml {

GradientBuckets::GradientBuckets(std::shared_ptr<Communicator> comm, std::vector<GradientRange> params,
                                 size_t bucket_bytes, std::chrono::milliseconds timeout, bool scatter)
    : comm_(std::move(comm)), timeout_(timeout), scatter_(scatter) {
  GPUML_CHECK(comm_ != nullptr, "gradient buckets need a communicator");
  GPUML_CHECK(!params.empty(), "gradient buckets need at least one parameter");
  GPUML_CHECK(bucket_bytes > 0, "the gradient bucket size must be positive");
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t expected_begin = i == 0 ? 0 : params[i - 1].end;
    GPUML_CHECK_KIND(ErrorKind::Internal, params[i].begin == expected_begin && params[i].end > params[i].begin,
                     "gradient buckets: parameter {} covers columns [{}, {}), expected to start at {}", i,
                     params[i].begin, params[i].end, expected_begin);
  }
  param_count_ = params.back().end;
  if (scatter_) {
    const int64_t ranks = comm_->world_size();
    shard_.assign(static_cast<size_t>((param_count_ + ranks - 1) / ranks), 0.0f);
    scalars_at_ = static_cast<int64_t>(shard_.size()) * ranks;  // after the zeros that even the shares
    bucket_bytes = std::numeric_limits<size_t>::max();           // one bucket
  } else {
    scalars_at_ = param_count_;
  }
  host_.assign(static_cast<size_t>(scalars_at_) + 4, 0.0f);
  // From the last parameter back: each bucket gathers parameters until it holds bucket_bytes.
  bucket_of_param_.resize(params.size());
  size_t bytes = 0;
  for (size_t i = params.size(); i-- > 0;) {
    if (buckets_.empty() || bytes >= bucket_bytes) {
      buckets_.push_back({params[i].begin, params[i].end});
      parts_.push_back(0);
      bytes = 0;
    }
    buckets_.back().begin = params[i].begin;
    bytes += static_cast<size_t>(params[i].end - params[i].begin) * sizeof(float);
    bucket_of_param_[i] = buckets_.size() - 1;
    ++parts_.back();
  }
  buckets_.front().end = scalars_at_ + 4;  // the scalars ride in the first bucket
  ++parts_.front();
  missing_ = parts_;
  next_launch_ = buckets_.size();  // nothing may launch before begin_step()
  reduced_ = buckets_.size();
  spans_.resize(buckets_.size());
  times_.buckets = static_cast<int>(buckets_.size());
  times_.scattered = scatter_;
  thread_ = std::thread([this] { communicate(); });
}

GradientBuckets::~GradientBuckets() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void GradientBuckets::begin_step(bool hold) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
  GPUML_CHECK_KIND(ErrorKind::Internal, reduced_ == buckets_.size() && queue_.empty(),
                   "gradient buckets: a step began before the previous one finished");
  missing_ = parts_;
  next_launch_ = 0;
  reduced_ = 0;
  hold_ = hold;
}

void GradientBuckets::arrived(size_t bucket) {
  GPUML_CHECK_KIND(ErrorKind::Internal, missing_[bucket] > 0, "gradient buckets: bucket {} completed twice", bucket);
  --missing_[bucket];
  if (!hold_) launch_ready();
}

void GradientBuckets::launch_ready() {
  if (error_) return;  // the step has failed: launch nothing more
  bool launched = false;
  // In order only: every rank launches bucket k after bucket k - 1, whatever arrived first.
  while (next_launch_ < buckets_.size() && missing_[next_launch_] == 0) {
    queue_.push_back(next_launch_++);
    launched = true;
  }
  if (launched) wake_.notify_all();
}

void GradientBuckets::parameter_ready(size_t index) {
  GPUML_CHECK_KIND(ErrorKind::Internal, index < bucket_of_param_.size(), "gradient buckets: no parameter {}", index);
  std::lock_guard<std::mutex> lock(mutex_);
  arrived(bucket_of_param_[index]);
}

void GradientBuckets::scalars_ready(const std::array<float, 4>& scalars) {
  std::copy(scalars.begin(), scalars.end(), host_.begin() + scalars_at_);
  std::lock_guard<std::mutex> lock(mutex_);
  arrived(0);
}

void GradientBuckets::backward_done() {
  std::lock_guard<std::mutex> lock(mutex_);
  backward_end_ = Clock::now();
  if (hold_) {
    hold_ = false;
    ++times_.held_steps;
    launch_ready();
  }
}

ReducedStep GradientBuckets::finish(int64_t step) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    GPUML_CHECK_KIND(ErrorKind::Internal, next_launch_ == buckets_.size() || error_,
                     "gradient buckets: step {} finished with bucket {} of {} still missing parts", step,
                     next_launch_ + 1, buckets_.size());
    wake_.wait(lock, [&] { return reduced_ == buckets_.size() || error_ != nullptr; });
    if (error_) std::rethrow_exception(error_);
  }
  const Clock::time_point now = Clock::now();
  ++times_.steps;
  times_.waited_seconds += std::chrono::duration<double>(now - backward_end_).count();
  for (const auto& [start, end] : spans_) {
    times_.all_reduce_seconds += std::chrono::duration<double>(end - start).count();
    if (start < backward_end_)
      times_.overlapped_seconds += std::chrono::duration<double>(std::min(end, backward_end_) - start).count();
  }
  const float* scalars = host_.data() + scalars_at_;
  GPUML_CHECK(scalars[1] > 0, "data parallel step {}: the ranks' batches carry no weight (no rows or tokens)", step);
  return {scalars[0], scalars[1], scalars[2], static_cast<int64_t>(scalars[3])};
}

void GradientBuckets::abandon() noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  queue_.clear();
  next_launch_ = buckets_.size();
  wake_.wait(lock, [&] { return !busy_; });
  reduced_ = buckets_.size();
}

// Takes the launched buckets in order and all-reduces each (sum).
void GradientBuckets::communicate() {
  for (;;) {
    size_t bucket = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      bucket = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    const GradientRange& range = buckets_[bucket];
    std::span<float> values(host_.data() + range.begin, static_cast<size_t>(range.end - range.begin));
    const std::string what = buckets_.size() == 1
                                 ? std::string("gradients")
                                 : fmt::format("gradients (bucket {} of {})", bucket + 1, buckets_.size());
    std::exception_ptr error;
    const Clock::time_point start = Clock::now();
    try {
      if (scatter_) {  // this rank's share of the gradient, then the scalars
        comm_->reduce_scatter(values.first(static_cast<size_t>(scalars_at_)), shard_, ReduceOp::sum, {what, timeout_});
        comm_->all_reduce(values.last(4), ReduceOp::sum, {"the step's loss sums", timeout_});
      } else {
        comm_->all_reduce(values, ReduceOp::sum, {what, timeout_});
      }
    } catch (...) {
      error = std::current_exception();
    }
    const Clock::time_point end = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
      spans_[bucket] = {start, end};
      if (error) {
        error_ = error;
        queue_.clear();
      } else {
        ++reduced_;
      }
    }
    wake_.notify_all();
  }
}

}  // namespace gpuml
