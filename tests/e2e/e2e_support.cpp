#include "e2e_support.h"

#include <sys/wait.h>

#include <array>
#include <fmt/format.h>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "data/idx.h"

namespace gpuml::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("gpuml-e2e-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

bool have_fashion_mnist() { return fs::exists(fs::path(fashion_mnist_dir()) / "train-images-idx3-ubyte.gz"); }

namespace {

void write_be32(std::ofstream& out, uint32_t v) {
  unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                        static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

void write_subset(const fs::path& from, const fs::path& to, int64_t rows) {
  Tensor t = data::read_idx(from.string());  // u8
  std::ofstream out(to, std::ios::binary);
  out.put(0).put(0).put(0x08).put(static_cast<char>(t.ndim()));
  write_be32(out, static_cast<uint32_t>(rows));
  int64_t per_row = 1;
  for (int d = 1; d < t.ndim(); ++d) {
    write_be32(out, static_cast<uint32_t>(t.dim(d)));
    per_row *= t.dim(d);
  }
  out.write(static_cast<const char*>(t.raw_data()), rows * per_row);
}

}  // namespace

void write_fashion_subset(const fs::path& dir, int64_t train, int64_t test) {
  fs::create_directories(dir);
  fs::path src = fashion_mnist_dir();
  write_subset(src / "train-images-idx3-ubyte.gz", dir / "train-images-idx3-ubyte", train);
  write_subset(src / "train-labels-idx1-ubyte.gz", dir / "train-labels-idx1-ubyte", train);
  write_subset(src / "t10k-images-idx3-ubyte.gz", dir / "t10k-images-idx3-ubyte", test);
  write_subset(src / "t10k-labels-idx1-ubyte.gz", dir / "t10k-labels-idx1-ubyte", test);
}

CommandResult run_gpuml(const std::string& args) {
  std::string command = "'";  // appended: GCC 12 warns (-Wrestrict) on "'" + std::string&&
  command += gpuml_cli_path();
  command += "' " + args;
  return run_shell(command);
}

CommandResult run_shell(const std::string& command_line) {
  const std::string command = "{ " + command_line + "\n} 2>&1";
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string q(const std::filesystem::path& p) { return fmt::format("'{}'", p.string()); }

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace gpuml::testing
