#include "core/device.h"

#include <fmt/format.h>

#include "core/error.h"

namespace gpuml {

std::string Device::str() const {
  return type == DeviceType::cpu ? std::string("cpu") : fmt::format("cuda:{}", index);
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {DeviceType::cuda, 0};
  if (text.rfind("cuda:", 0) == 0) {
    std::string idx = text.substr(5);
    bool digits = !idx.empty() && idx.size() < 4 && idx.find_first_not_of("0123456789") == std::string::npos;
    GPUML_CHECK(digits, "bad device '{}': expected cpu, cuda or cuda:N", text);
    return {DeviceType::cuda, std::stoi(idx)};
  }
  GPUML_FAIL(ErrorKind::Invalid, "bad device '{}': expected cpu, cuda or cuda:N", text);
}

}  // namespace gpuml
