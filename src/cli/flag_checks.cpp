#include "cli/flag_checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "optim/optimizer.h"
#include "train/task.h"
#include "data/shard_format.h"

namespace gpuml::cli {

namespace {

bool parse_double(const std::string& text, double& value) {
  try {
    size_t used = 0;
    value = std::stod(text, &used);
    return used == text.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

CLI::Validator number_at_least(double low, bool inclusive) {
  const std::string bound = fmt::format("{} {}", inclusive ? ">=" : ">", low);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!parse_double(text, value)) return fmt::format("'{}' is not a number", text);
        const bool ok = inclusive ? value >= low : value > low;
        return ok ? std::string() : fmt::format("must be {}, got {}", bound, text);
      },
      inclusive && low == 0 ? "NONNEGATIVE" : low == 0 ? "POSITIVE" : "NUMBER " + bound);
}

CLI::Validator number_in_range(double low, double high) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!parse_double(text, value)) return fmt::format("'{}' is not a number", text);
        return value >= low && value < high ? std::string()
                                            : fmt::format("must be in [{}, {}), got {}", low, high, text);
      },
      fmt::format("NUMBER in [{}, {})", low, high));
}

CLI::Validator device_name() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (text == "auto" || text == "cpu" || text == "ref" || text == "cuda") return {};
        if (text.starts_with("cuda:") && text.size() > 5 && text.size() < 9 &&
            text.find_first_not_of("0123456789", 5) == std::string::npos)
          return {};
        return fmt::format("'{}' is not a device; accepted: auto, cpu, ref, cuda, cuda:N (e.g. cuda:1)", text);
      },
      "auto|cpu|ref|cuda[:N]");
}

uint64_t memory_size_bytes(const std::string& text, const std::string& flag) {
  if (text == "0") return 0;
  GPUML_CHECK(!text.empty() && !std::isdigit(static_cast<unsigned char>(text.back())),
              "{} {}: give a unit, e.g. 512M or 8G (a bare number is ambiguous)", flag, text);
  return data::parse_byte_size(text, flag);
}

CLI::Validator memory_size(bool allow_zero) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        if (text == "0" && !allow_zero) return "must be more than 0";
        if (text == "0") return {};
        if (text.empty() || std::isdigit(static_cast<unsigned char>(text.back())))
          return fmt::format("'{}' has no unit; give one, e.g. 512M or 8G (a bare number is ambiguous)", text);
        try {
          data::parse_byte_size(text, "size");
        } catch (const Error&) {
          return fmt::format("'{}' is not a size; expected e.g. 512K, 64M, 8G", text);
        }
        return {};
      },
      "SIZE");
}

CLI::Validator csv_fill_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (text == "mean" || (parse_double(text, value) && std::isfinite(value))) return {};
        return fmt::format("'{}': expected 'mean' or a number (e.g. 0)", text);
      },
      "mean|NUMBER");
}

CLI::Validator task_name() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          check_task_name(text);
          return {};
        } catch (const Error& e) {
          return e.message();
        }
      },
      "auto|classification|regression|language-model");
}

CLI::Validator weight_decay_params_name() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          optim::check_weight_decay_params(text);
          return {};
        } catch (const Error& e) {
          return e.message();
        }
      },
      "all|matrices");
}

CLI::Validator file_extension(std::vector<std::string> extensions) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::string ext = std::filesystem::path(text).extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (std::find(extensions.begin(), extensions.end(), ext) != extensions.end()) return {};
        return fmt::format("{}: expected a file name ending in {}", text, fmt::join(extensions, " or "));
      },
      "FILE");
}

CLI::Validator directory_to_write() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::error_code ec;
        if (std::filesystem::exists(text, ec) && !std::filesystem::is_directory(text, ec))
          return fmt::format("{} is a file, not a directory; give a new or existing directory", text);
        return {};
      },
      "DIR");
}

}  // namespace gpuml::cli
