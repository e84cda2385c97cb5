#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"gpuml: train and run neural networks on GPUs and CPUs"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
