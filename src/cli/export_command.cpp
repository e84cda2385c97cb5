// `gpuml export`: a trained model's weights as NPZ, or the model as ONNX.
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "interop/onnx_export.h"
#include "interop/weights_file.h"
#include "train/inference.h"

namespace gpuml::cli {

Command add_export_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, npz, onnx;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "Write a trained model's weights as NPZ or the model as ONNX");
  cmd->add_option("--checkpoint", a->checkpoint, "A run directory or checkpoint file")->required();
  cmd->add_option("--npz", a->npz, "Weights under PyTorch state_dict names, for numpy.load");
  cmd->add_option("--onnx", a->onnx,
                  "The model as ONNX (opset 17, dynamic batch; outputs 'logits' and 'probabilities')");
  return {cmd, [a] {
            GPUML_CHECK(!a->npz.empty() || !a->onnx.empty(), "export: give --npz FILE and/or --onnx FILE");
            LoadedModel m = load_trained_model(a->checkpoint);
            fmt::print("model: {}\n", m.path);
            if (!a->npz.empty()) {
              interop::save_npz_weights(a->npz, m.checkpoint.model);
              fmt::print("wrote {} tensors to {}\n", m.checkpoint.model.size(), a->npz);
            }
            if (!a->onnx.empty()) {
              interop::export_onnx(m.model, m.checkpoint.model, a->onnx);
              fmt::print("wrote {} (ONNX opset {})\n", a->onnx, interop::kOnnxOpset);
            }
            return 0;
          }};
}

}  // namespace gpuml::cli
