// Where memory lives. Host memory is shared by the `ref` and `cpu` backends;
// `cuda:N` is device memory owned by the CUDA plugin.
#pragma once

#include <string>

namespace gpuml {

enum class DeviceType { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool is_host() const { return type == DeviceType::cpu; }
  bool operator==(const Device&) const = default;
  std::string str() const;
  static Device parse(const std::string& text);  // "cpu", "cuda", "cuda:1"; throws on anything else
};

}  // namespace gpuml
