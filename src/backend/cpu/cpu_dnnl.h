// oneDNN glue for the cpu backend: one CPU engine and stream, and a cache of primitives keyed by
// shape and attributes (creating a primitive costs far more than running a small one).
//
//   dnnl::primitive p = ctx.primitive("mm f32 7x5x3 ...", [&] { return dnnl::matmul(pd); });
//   ctx.execute(p, {{DNNL_ARG_SRC, ctx.memory(md, ptr)}, ...});
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace gpuml::cpu {

class DnnlContext {
 public:
  DnnlContext();

  const dnnl::engine& engine() const { return engine_; }
  // The cached primitive for `key`, built by make() on the first request.
  template <typename Make>
  dnnl::primitive primitive(const std::string& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    dnnl::primitive p = make();
    cache_.emplace(key, p);
    return p;
  }
  dnnl::memory memory(const dnnl::memory::desc& md, const void* data) const {
    return dnnl::memory(md, engine_, const_cast<void*>(data));
  }
  // Runs p and waits: host kernels are synchronous.
  void execute(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);

  // Runs p on plain (NCHW/OIHW) buffers: an argument whose layout p chose differently (it was
  // created with format_tag::any) goes through a cached reorder before (inputs) or after (outputs).
  struct PlainArg {
    int arg;  // DNNL_ARG_*
    dnnl::memory::desc md;
    const void* data;
    bool is_output;
  };
  void execute_plain(const std::string& key, const dnnl::primitive& p, const std::vector<PlainArg>& args);

  // Whether bf16 primitives run on this machine (probed once at construction).
  bool supports_bf16() const { return bf16_; }
  std::string isa_name() const;

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::mutex mutex_;
  std::unordered_map<std::string, dnnl::primitive> cache_;
  bool bf16_ = false;
};

// The oneDNN data type of a gpuml dtype (f32, bf16 only here).
dnnl::memory::data_type dnnl_type(DType dtype);

// Runs fn, turning a oneDNN error into a gpuml error that names the op.
template <typename Fn>
void with_dnnl_errors(const char* op, Fn&& fn) {
  try {
    fn();
  } catch (const dnnl::error& e) {
    GPUML_FAIL(ErrorKind::Unsupported, "{}: oneDNN failed: {} (status {})", op, e.what(),
               static_cast<int>(e.status));
  }
}

}  // namespace gpuml::cpu
