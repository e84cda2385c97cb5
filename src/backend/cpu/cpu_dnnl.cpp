#include "backend/cpu/cpu_dnnl.h"

#include <fmt/format.h>

namespace gpuml::cpu {

namespace {
// A 2x2 bf16 matmul: if oneDNN can build it, bf16 primitives have an implementation here.
bool probe_bf16(const dnnl::engine& engine) {
  try {
    using dt = dnnl::memory::data_type;
    dnnl::memory::desc md({2, 2}, dt::bf16, dnnl::memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(md, md, md), engine);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}
}  // namespace

DnnlContext::DnnlContext() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
  bf16_ = probe_bf16(engine_);
}

void DnnlContext::execute(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  p.execute(stream_, args);
  stream_.wait();
}

void DnnlContext::execute_plain(const std::string& key, const dnnl::primitive& p,
                                const std::vector<PlainArg>& args) {
  std::unordered_map<int, dnnl::memory> exec_args;
  std::vector<std::pair<dnnl::memory, dnnl::memory>> outputs;  // (blocked, plain)
  std::vector<dnnl::primitive> output_reorders;
  for (const PlainArg& a : args) {
    const dnnl_memory_desc_t* chosen_c =
        dnnl_primitive_desc_query_md(p.get_primitive_desc(), dnnl_query_exec_arg_md, a.arg);
    GPUML_CHECK_KIND(ErrorKind::Internal, chosen_c != nullptr, "oneDNN: no memory desc for argument {}", a.arg);
    dnnl::memory::desc chosen(*chosen_c);
    dnnl::memory plain = memory(a.md, a.data);
    if (chosen == a.md) {
      exec_args.emplace(a.arg, plain);
      continue;
    }
    dnnl::memory blocked(chosen, engine_);
    std::string reorder_key = fmt::format("{} reorder arg {} {}", key, a.arg, a.is_output ? "out" : "in");
    dnnl::primitive r = primitive(reorder_key, [&] {
      return a.is_output ? dnnl::reorder(blocked, plain) : dnnl::reorder(plain, blocked);
    });
    if (a.is_output) {
      outputs.emplace_back(blocked, plain);
      output_reorders.push_back(r);
    } else {
      execute(r, {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, blocked}});
    }
    exec_args.emplace(a.arg, blocked);
  }
  execute(p, exec_args);
  for (size_t i = 0; i < outputs.size(); ++i)
    execute(output_reorders[i], {{DNNL_ARG_FROM, outputs[i].first}, {DNNL_ARG_TO, outputs[i].second}});
}

std::string DnnlContext::isa_name() const {
  using isa = dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case isa::sse41: return "sse41";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx2_vnni: return "avx2_vnni";
    case isa::avx512_core: return "avx512_core";
    case isa::avx512_core_vnni: return "avx512_core_vnni";
    case isa::avx512_core_bf16: return "avx512_core_bf16";
    case isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

dnnl::memory::data_type dnnl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return dnnl::memory::data_type::f32;
    case DType::bf16: return dnnl::memory::data_type::bf16;
    default: GPUML_FAIL(ErrorKind::Internal, "no oneDNN type for {}", dtype);
  }
}

}  // namespace gpuml::cpu
