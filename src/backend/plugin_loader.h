// Loading backends from plugins (shared libraries) at run time. The CUDA backend lives in
// libgpuml_cuda.so so that the core library and the gpuml executable link no CUDA library: one
// binary runs on a machine without a driver and uses the GPU where there is one.
//
//   PluginLoad load = load_backend_plugin("/opt/gpuml/libgpuml_cuda.so");
//   if (load.backends.empty()) fmt::print("CUDA: not used: {}\n", load.reason);
//
// A plugin exports two extern "C" functions: gpuml_plugin_abi_version() (must equal
// kPluginAbiVersion: the plugin was built from the same headers) and gpuml_plugin_load(), which
// fills a PluginLoad with its backends or, when it cannot run (no driver, no device), a reason.
// No CUDA header is included here; the plugin does every CUDA call itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace gpuml {

// The plugin ABI: a plugin built from other headers is refused, not called. The number folds in
// the op count and the size and alignment of every type that crosses the boundary, so a layout
// change of Attrs, KernelCall, Tensor, Shape, Backend or OpQuery changes it by itself; what sizes cannot
// see (a virtual function of Backend or Allocator added, removed or reordered; a field replaced by
// one of the same size) needs kBackendInterfaceRevision bumped by hand.
// Revision 3: kernel slots carry a shape predicate that receives an OpQuery.
inline constexpr int kBackendInterfaceRevision = 3;

// Every op's arity and output count, folded: a kernel indexes its inputs and outputs by
// position, so a plugin built when an op took other inputs (adam_update gaining its decay mask)
// must be refused even though no type changed size.
constexpr size_t op_table_signature() {
  size_t h = 0;
  for (const OpInfo& info : kOpInfos)
    h = h * 31 + static_cast<size_t>(info.arity + 2) * 8 + static_cast<size_t>(info.outputs);
  return h;
}

// FNV-1a over the parts, folded into a positive int (pure, so a test can show that each part counts).
constexpr int plugin_abi_fingerprint(std::initializer_list<size_t> parts) {
  uint64_t h = 1469598103934665603ull;
  for (size_t p : parts) {
    for (int byte = 0; byte < 8; ++byte) {
      h ^= (static_cast<uint64_t>(p) >> (8 * byte)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return static_cast<int>((h ^ (h >> 32)) & 0x3fffffff);
}

inline constexpr int kPluginAbiVersion = plugin_abi_fingerprint(
    {kBackendInterfaceRevision, static_cast<size_t>(kNumOps), op_table_signature(), sizeof(Attrs), alignof(Attrs), sizeof(KernelCall),
     alignof(KernelCall), sizeof(Tensor), sizeof(Shape), sizeof(Backend), alignof(Backend), sizeof(Device),
     sizeof(OpQuery), alignof(OpQuery)});

struct PluginLoad {
  std::string path;  // the file tried (or the names searched)
  std::vector<std::unique_ptr<Backend>> backends;
  std::string reason;  // why no backend was loaded ("no CUDA driver (libcuda.so.1 not found)")
};

// The entry points a plugin defines (extern "C").
using PluginAbiVersionFn = int (*)();
using PluginLoadFn = void (*)(PluginLoad* result);
inline constexpr const char* kPluginAbiVersionSymbol = "gpuml_plugin_abi_version";
inline constexpr const char* kPluginLoadSymbol = "gpuml_plugin_load";

// dlopen()s `path` and asks it for its backends. Never throws: every failure (missing file,
// unresolved library, wrong ABI, an exception inside the plugin) becomes `reason`. A plugin
// that returned backends stays loaded for the life of the process (their code lives in it).
PluginLoad load_backend_plugin(const std::string& path);

// The directories searched for libgpuml_cuda.so, in order: each entry of GPUML_PLUGIN_PATH
// (colon-separated; an entry may also name the file itself), the executable's directory and the
// core library's directory.
std::vector<std::string> plugin_search_paths();

// The first `file_name` in plugin_search_paths() (an entry naming a file of that name counts too),
// or "" when none is there.
std::string find_plugin_file(const std::string& file_name);

// Finds and loads the CUDA plugin. Without a driver it does not even open the plugin (which would
// map cuDNN and cuBLAS for nothing): the reason says so.
PluginLoad load_cuda_plugin();


}  // namespace gpuml
