#include "backend/plugin_loader.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <system_error>

namespace gpuml {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCudaPluginFile = "libgpuml_cuda.so";

std::string dl_error_text() {
  const char* e = dlerror();
  return e ? std::string(e) : std::string("unknown dlopen error");
}

std::string directory_of_this_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&load_backend_plugin), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  fs::path p = fs::canonical(info.dli_fname, ec);
  return ec ? std::string() : p.parent_path().string();
}

std::string directory_of_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

// Asks the dynamic loader whether a CUDA driver is installed, without CUDA headers.
bool cuda_driver_present() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!h) return false;
  dlclose(h);
  return true;
}

}  // namespace

std::vector<std::string> plugin_search_paths() {
  std::vector<std::string> paths;
  auto add = [&](const std::string& p) {
    if (p.empty()) return;
    for (const std::string& q : paths)
      if (q == p) return;
    paths.push_back(p);
  };
  if (const char* env = std::getenv("GPUML_PLUGIN_PATH")) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t colon = list.find(':', start);
      if (colon == std::string::npos) colon = list.size();
      add(list.substr(start, colon - start));
      start = colon + 1;
    }
  }
  add(directory_of_executable());
  add(directory_of_this_library());
  return paths;
}

PluginLoad load_backend_plugin(const std::string& path) {
  PluginLoad load;
  load.path = path;
  dlerror();
  // RTLD_NOW: an unresolved symbol fails here, with a message, not later in the middle of a run.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    load.reason = fmt::format("cannot load {}: {}", path, dl_error_text());
    return load;
  }
  auto abi = reinterpret_cast<PluginAbiVersionFn>(dlsym(handle, kPluginAbiVersionSymbol));
  auto entry = reinterpret_cast<PluginLoadFn>(dlsym(handle, kPluginLoadSymbol));
  if (!abi || !entry) {
    load.reason = fmt::format("{} is not a gpuml plugin (no {} / {})", path, kPluginAbiVersionSymbol, kPluginLoadSymbol);
  } else if (int v = abi(); v != kPluginAbiVersion) {
    load.reason = fmt::format("{} was built for plugin ABI {}, this gpuml expects {}: rebuild it", path, v,
                              kPluginAbiVersion);
  } else {
    try {
      entry(&load);
      load.path = path;
      if (load.backends.empty() && load.reason.empty()) load.reason = "the plugin returned no backend";
    } catch (const std::exception& e) {
      load.backends.clear();
      load.reason = fmt::format("{} failed to initialise: {}", path, e.what());
    }
  }
  // A plugin whose backends are in use must stay mapped; one that returned none can go.
  if (load.backends.empty()) dlclose(handle);
  return load;
}

std::string find_plugin_file(const std::string& file_name) {
  for (const std::string& d : plugin_search_paths()) {
    std::error_code ec;
    fs::path p = fs::path(d);
    if (p.filename() == file_name && fs::is_regular_file(p, ec)) return p.string();
    p /= file_name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

PluginLoad load_cuda_plugin() {
  PluginLoad load;
#ifndef GPUML_CUDA_PLUGIN_BUILT
  // A plugin from another build could still be named by GPUML_PLUGIN_PATH; otherwise say why.
  if (std::getenv("GPUML_PLUGIN_PATH") == nullptr) {
    load.reason = "plugin not built (configure with -DGPUML_CUDA=ON and a CUDA toolkit)";
    return load;
  }
#endif
  std::vector<std::string> dirs = plugin_search_paths();
  std::string found;
  for (const std::string& d : dirs) {
    std::error_code ec;
    fs::path p = fs::path(d);
    if (fs::is_regular_file(p, ec)) {
      found = p.string();
      break;
    }
    p /= kCudaPluginFile;
    if (fs::is_regular_file(p, ec)) {
      found = p.string();
      break;
    }
  }
  if (found.empty()) {
    load.path = kCudaPluginFile;
    load.reason = fmt::format("{} not found (searched {}; set GPUML_PLUGIN_PATH)", kCudaPluginFile,
                              fmt::join(dirs, ", "));
    return load;
  }
  if (!cuda_driver_present()) {
    load.path = found;
    load.reason = "no CUDA driver (libcuda.so.1 not found)";
    return load;
  }
  return load_backend_plugin(found);
}

}  // namespace gpuml
