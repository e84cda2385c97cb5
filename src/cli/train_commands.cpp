// `gpuml train`, `gpuml eval` and `gpuml predict`.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "backend/process_env.h"
#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "core/error.h"
#include "core/spelling.h"
#include "data/shard_format.h"
#include "nn/transformer.h"
#include "train/inference.h"
#include "train/callbacks.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace gpuml::cli {

namespace {

const CLI::Validator kNonNegative = number_at_least(0, true);
const CLI::Validator kPositive = number_at_least(0, false);

// "0.9,0.999" -> (0.9, 0.999); false when the text is not two numbers in [0, 1).
bool split_betas(const std::string& text, double& beta1, double& beta2) {
  const size_t comma = text.find(',');
  if (comma == std::string::npos) return false;
  try {
    size_t used1 = 0, used2 = 0;
    beta1 = std::stod(text.substr(0, comma), &used1);
    beta2 = std::stod(text.substr(comma + 1), &used2);
    if (used1 != comma || used2 != text.size() - comma - 1) return false;
  } catch (const std::exception&) {
    return false;
  }
  return beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1;
}

CLI::Validator betas_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double beta1 = 0, beta2 = 0;
        return split_betas(text, beta1, beta2)
                   ? std::string()
                   : fmt::format("'{}': expected BETA1,BETA2, two numbers in [0, 1), e.g. 0.9,0.999", text);
      },
      "BETA1,BETA2");
}

std::pair<double, double> parse_betas(const std::string& text) {
  double beta1 = 0, beta2 = 0;
  GPUML_CHECK(split_betas(text, beta1, beta2), "--betas '{}': expected BETA1,BETA2 in [0, 1)", text);
  return {beta1, beta2};
}

// Flags that were given but do not apply to the data at hand: say so rather than ignore them.
// --model cpu-small|gpu-char|gpt2-124m: torch_gpt.py's recipe for every flag not given, so the
// preset trains as the peer does (`--steps` unless --epochs is given); says what it set.
void apply_gpt_recipe(TrainConfig& cfg, const CLI::App& cmd, std::string& schedule, double& weight_decay,
                      std::string& betas) {
  const nn::GptRecipe r = nn::gpt_recipe(cfg.model);
  std::vector<std::string> set;
  auto unset = [&](const char* flag) { return cmd.count(flag) == 0; };
  if (unset("--data") && !r.data.empty()) cfg.data = r.data, set.push_back("--data " + r.data);
  if (unset("--batch-size")) cfg.batch_size = r.batch, set.push_back(fmt::format("--batch-size {}", r.batch));
  if (unset("--steps") && unset("--epochs")) cfg.steps = r.steps, set.push_back(fmt::format("--steps {}", r.steps));
  if (unset("--optimizer")) cfg.optimizer.kind = "adamw", set.push_back("--optimizer adamw");
  if (unset("--lr")) cfg.optimizer.lr = r.lr, set.push_back(fmt::format("--lr {}", r.lr));
  if (unset("--betas")) betas = "0.9,0.99", set.push_back("--betas 0.9,0.99");
  if (unset("--weight-decay")) weight_decay = r.weight_decay, set.push_back(fmt::format("--weight-decay {}", r.weight_decay));
  if (unset("--weight-decay-params"))
    cfg.optimizer.weight_decay_params = "matrices", set.push_back("--weight-decay-params matrices");
  if (unset("--clip-grad-norm")) cfg.optimizer.clip_grad_norm = 1.0, set.push_back("--clip-grad-norm 1");
  if (unset("--schedule")) {
    // A run shorter than the warm-up (a trial) warms up over its first tenth instead.
    const int64_t warmup = cfg.steps > 0 && cfg.steps <= r.warmup ? std::max<int64_t>(1, cfg.steps / 10) : r.warmup;
    schedule = fmt::format("cosine:{},warmup:{}", r.min_lr, warmup);
    set.push_back("--schedule " + schedule);
  }
  if (!set.empty() && !cfg.quiet)
    fmt::print(stderr, "note: the {} preset trains with torch_gpt.py's recipe: {}\n", cfg.model, fmt::join(set, " "));
}

void print_flag_notes(const TrainConfig& cfg, const CLI::App& cmd) {
  if (!cfg.resume.empty() || data::is_shard_dataset(cfg.data)) return;
  for (const char* flag : {"--data-memory-limit", "--shuffle-buffer"})
    if (cmd.count(flag) > 0)
      fmt::print(stderr, "note: {} applies to sharded data (gpuml data pack); {} is read into memory whole\n", flag,
                 cfg.data);
}

// The flags a resumed run takes from the new command (train/resume.h says which fields); every
// other flag sets something the run fixed, and is refused rather than silently ignored.
constexpr std::array kFlagsWithResume = {"--resume",  "--epochs",          "--out",    "--quiet",
                                         "--max-steps", "--checkpoint-every", "--eval-every", "--eval-iters",
                                         "--threads", "--device", "--dist-timeout", "--bucket-mb", "--zero",
                                         "--gpu-memory-limit", "--cuda-graphs", "--no-cuda-graphs", "--help",
                                         "--overwrite"};  // refused by check_run_dir: it would delete the run

void refuse_flags_the_run_fixed(const CLI::App& cmd) {
  std::vector<std::string> fixed;
  for (const CLI::Option* option : cmd.get_options())
    if (option->count() > 0 && std::find(kFlagsWithResume.begin(), kFlagsWithResume.end(), option->get_name()) ==
                                   kFlagsWithResume.end())
      fixed.push_back(option->get_name());
  if (!fixed.empty())
    throw UsageError(fmt::format("--resume continues the run as it was configured: {} cannot change (with --resume "
                                 "give only --epochs, --out, --max-steps, --checkpoint-every, --threads, --device, "
                                 "--quiet, --gpu-memory-limit, --no-cuda-graphs, --dist-timeout, --bucket-mb, --zero)",
                                 fmt::join(fixed, ", ")));
}

void add_precision_option(CLI::App* cmd, std::string& target, const std::string& help) {
  cmd->add_option("--precision", target, help)->capture_default_str()->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
}

constexpr const char* kInferencePrecisionHelp =
    "fp32 (the default, whatever the run trained in); tf32 (GPU only); bf16 (bf16 matmul/conv and activations, "
    "f32 softmax and loss)";

// The parsed --precision of eval/predict, after telling stderr what the user should know about it
// on this device (as train's header does): TF32 on a CPU, bf16 kernels this CPU lacks.
Precision inference_precision(const std::string& name, const std::string& device) {
  const Precision precision = parse_precision(name);
  const PlanOptions plan = plan_options_for_device(device);
  if (std::string note = precision_note(precision, *plan.backends.front()); !note.empty())
    fmt::print(stderr, "note: {}\n", note);
  return precision;
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto cfg = std::make_shared<TrainConfig>();
  auto schedule = std::make_shared<std::string>("constant");
  auto weight_decay = std::make_shared<double>(-1.0);
  auto memory_limit = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a model (default: the cnn preset on Fashion-MNIST, 5 epochs, on the fastest device)");
  cmd->add_option("--data", cfg->data,
                  "A directory of IDX files, a .csv or an .npz file, or a sharded dataset (gpuml data pack)")
      ->capture_default_str();
  cmd->add_option("--data-memory-limit", *memory_limit,
                  "Sharded data: host memory for data, e.g. 512M, 4G (default: a quarter of the available memory)")
      ->check(memory_size(false));
  cmd->add_option("--shuffle-buffer", cfg->shuffle_buffer,
                  "Sharded data: records in the shuffle buffer (default: as many as the memory limit allows)")
      ->check(kNonNegative);
  cmd->add_option("--model", cfg->model, "A preset (mlp, cnn), a JSON file listing layers, or an .onnx model to fine-tune")
      ->capture_default_str();
  cmd->add_option("--epochs", cfg->epochs, "Epochs to train")->capture_default_str()->check(kPositive);
  cmd->add_option("--batch-size", cfg->batch_size, "Samples per step")->capture_default_str()->check(kPositive);
  cmd->add_option("--lr", cfg->optimizer.lr, "Learning rate")->capture_default_str()->check(kPositive);
  cmd->add_option("--optimizer", cfg->optimizer.kind, "sgd, adam or adamw")
      ->capture_default_str()
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  cmd->add_option("--momentum", cfg->optimizer.momentum, "SGD momentum (adam/adamw: see --betas)")
      ->capture_default_str()
      ->check(kNonNegative);
  auto betas = std::make_shared<std::string>();
  cmd->add_option("--betas", *betas, "Adam/AdamW: BETA1,BETA2, the decay of the moment estimates (default 0.9,0.999)")
      ->check(betas_value());
  cmd->add_flag("--nesterov", cfg->optimizer.nesterov, "SGD with Nesterov momentum");
  cmd->add_option("--weight-decay", *weight_decay, "Weight decay (default 0; 0.01 for adamw)");
  cmd->add_option("--clip-grad-norm", cfg->optimizer.clip_grad_norm, "Clip the global gradient norm (0: off)")
      ->capture_default_str();
  cmd->add_option("--weight-decay-params", cfg->optimizer.weight_decay_params,
                  "Which parameters --weight-decay applies to: all, or matrices (parameters of 2+ dims: Linear and "
                  "Embedding weights, conv kernels; not biases or norm scales, as nanoGPT's AdamW)")
      ->capture_default_str()
      ->check(weight_decay_params_name());
  cmd->add_option("--schedule", *schedule, "constant, step[:EPOCHS[:GAMMA]] or cosine[:MIN_LR], plus ,warmup:STEPS")
      ->capture_default_str();
  cmd->add_option("--seed", cfg->seed, "Seed for initialisation, shuffling and dropout")->capture_default_str();
  cmd->add_option("--threads", cfg->threads, "CPU threads (0: all cores)")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--device", cfg->device, "auto, cpu, ref or cuda[:N]")->capture_default_str()->check(device_name());
  cmd->add_option("--out", cfg->out, "Run directory: new or empty (default runs/<model>-<time>)")
      ->check(directory_to_write());
  cmd->add_flag("--overwrite", cfg->overwrite,
                "Clear an earlier run from --out first (a non-empty --out is refused without it)");
  cmd->add_option("--resume", cfg->resume, "Continue a run: its directory or a checkpoint file");
  cmd->add_option("--init-from", cfg->init_from,
                  "Start from these weights (.safetensors or .npz with PyTorch state_dict names)");
  cmd->add_option("--val-split", cfg->val_split,
                  "Hold out this fraction of the training set for validation (default: 0.1 when the data has no "
                  "test split, else none; 0: train on all of it, with no evaluation)")
      ->check(number_in_range(0, 1));
  cmd->add_option("--task", cfg->task,
                  "What the model learns: classification, regression (MSE; RMSE), language-model (next-token "
                  "cross-entropy; perplexity), or auto: decided from the labels and the model (README: Tasks)")
      ->capture_default_str()
      ->check(task_name());
  cmd->add_option("--ignore-index", cfg->ignore_index, "language-model: the target id that counts for nothing (padding)")
      ->capture_default_str();
  cmd->add_option("--patience", cfg->patience,
                  "Stop after this many epochs without a better held-out metric (accuracy, RMSE, perplexity; 0: never)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--csv-label", cfg->csv_label, "CSV: the label column's name (default: the last column)");
  cmd->add_option("--csv-fill", cfg->csv_fill, "CSV: fill missing values with 'mean' or a number")
      ->check(csv_fill_value());
  cmd->add_option("--checkpoint-every", cfg->checkpoint_every,
                  "Also checkpoint every N steps inside an epoch, so --resume continues mid-epoch (0: epoch ends)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--eval-every", cfg->eval_every,
                  "Also evaluate on the held-out data every N steps (log, steps.csv, TensorBoard; 0: epoch ends)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--eval-iters", cfg->eval_iters,
                  "--eval-every evaluates the held-out data's first N batches (0: all of it)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--steps", cfg->steps,
                  "Train for N optimizer steps: the schedule's length, instead of --epochs (0: by epochs)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--max-steps", cfg->max_steps, "Stop after N optimizer steps in all, checkpointed (0: no limit)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_flag("--quiet", cfg->quiet, "No summary, no progress bar");
  auto precision = std::make_shared<std::string>("fp32");
  add_precision_option(cmd, *precision,
                       "fp32; tf32 (f32 matmul/conv on TF32 tensor cores, GPU only); bf16 (mixed: bf16 matmul/conv "
                       "and activations, f32 weights, optimizer and losses)");
  cmd->add_flag("--deterministic", cfg->deterministic,
                "Deterministic kernels: two runs with the same seed, device and --threads give identical weights");
  cmd->add_flag("--sync-batchnorm", cfg->sync_batchnorm,
                "Several processes: BatchNorm statistics over every rank's batch (N ranks x batch B train as one "
                "process x N*B); without it each rank uses its own batch and takes rank 0's running statistics. "
                "One process: no effect");
  // Two flags rather than CLI11's "--cuda-graphs,!--no-cuda-graphs", whose help reads
  // "--no-cuda-graphs{false}", as if graphs were off by default.
  CLI::Option* graphs =
      cmd->add_flag("--cuda-graphs", cfg->cuda_graphs,
                    "Capture the training step as a CUDA graph and replay it (the default; GPU only)");
  cmd->add_flag_callback("--no-cuda-graphs", [cfg] { cfg->cuda_graphs = false; },
                         "Launch each op of the step instead of replaying a CUDA graph")
      ->excludes(graphs);
  auto dist_timeout = std::make_shared<double>(300);
  cmd->add_option("--dist-timeout", *dist_timeout,
                  "Several processes (mpirun, srun, torchrun variables): seconds the rendezvous or a collective "
                  "waits for the other ranks before the job ends with a message naming the rank and the collective")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bucket-mb", cfg->bucket_mb,
                  "Several processes: gradients are all-reduced in buckets of about this many MiB, each started as "
                  "soon as backward has produced it (the same on every rank)")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--zero", cfg->zero,
                  "Several processes on CPUs: 1 splits the optimizer update over the ranks (each updates 1/N of "
                  "the parameters and optimizer state, then they all-gather the parameters; ZeRO stage 1's work; "
                  "the same results, to rounding beyond 2 ranks); 0 off")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 1}));
  auto gpu_memory_limit = std::make_shared<std::string>("0");
  cmd->add_option("--gpu-memory-limit", *gpu_memory_limit,
                  "Cap on the GPU memory gpuml holds, with a unit: 512M, 8G (0: none)")
      ->capture_default_str()
      ->check(memory_size(true));
  return {cmd, [cfg, schedule, weight_decay, memory_limit, gpu_memory_limit, precision, betas, dist_timeout, cmd] {
            if (!cfg->resume.empty()) refuse_flags_the_run_fixed(*cmd);
            cfg->epochs_given = cfg->resume.empty() || cmd->count("--epochs") > 0;
            if (cmd->count("--steps") > 0 && cmd->count("--epochs") > 0)
              throw UsageError("--steps and --epochs exclude each other: --steps N sets the run's length in optimizer steps");
            if (cfg->resume.empty() && nn::is_gpt_preset(cfg->model))
              apply_gpt_recipe(*cfg, *cmd, *schedule, *weight_decay, *betas);
            // Device backends take the cap before anything is allocated on them.
            // Only a cap loads the CUDA plugin here (--device cpu without one never does).
            const uint64_t gpu_cap = memory_size_bytes(*gpu_memory_limit, "--gpu-memory-limit");
            if (gpu_cap > 0)
              for (Backend* b : backend_registry().all())
                if (!b->device().is_host()) b->set_memory_limit(static_cast<size_t>(gpu_cap));
            cfg->schedule = optim::parse_schedule(*schedule);
            cfg->precision = parse_precision(*precision);
            if (!memory_limit->empty())
              cfg->data_memory_limit = memory_size_bytes(*memory_limit, "--data-memory-limit");
            if (*weight_decay >= 0) cfg->optimizer.weight_decay = *weight_decay;
            if (!betas->empty()) std::tie(cfg->optimizer.beta1, cfg->optimizer.beta2) = parse_betas(*betas);
            if (!betas->empty() && cfg->optimizer.kind == "sgd")
              GPUML_FAIL(ErrorKind::Invalid, "--betas {}: betas are adam/adamw settings; sgd uses --momentum", *betas);
            // Several processes (mpirun -np N, srun, the torchrun variables): this one's rank, and the engine to
            // the others.
            const Environment env = environment_of_this_process();
            const ProcessPlacement placement = detect_process_placement(env);
            DataParallel parallel;
            parallel.collective_timeout = std::chrono::milliseconds(std::llround(*dist_timeout * 1000));
            parallel.gradient_engine = gradient_engine_request(env);  // GPUML_COMM
            parallel.local_rank = placement.local_rank;
            parallel.communicator = open_communicator(placement, parallel.collective_timeout);
            const std::shared_ptr<Communicator> comm = parallel.communicator;
            const bool primary = comm->rank() == 0;  // the only rank that writes or prints
            if (primary) print_flag_notes(*cfg, *cmd);
            // A non-empty --out is a command line that cannot run as given: exit 2 before any work.
            // Only rank 0 writes the run (another rank's check would race with its first file).
            try {
              if (primary) check_run_dir(*cfg);
            } catch (const Error& e) {
              if (comm->world_size() > 1) comm->abort_job(fmt::format("gpuml: error: {}", e.message()));
              throw UsageError(e.message());
            }
            TrainResult r;
            try {
              r = train(*cfg, parallel);
            } catch (const Error& e) {
              // The other ranks would wait for this one until their deadline: end the job now.
              if (comm->world_size() > 1)
                comm->abort_job(fmt::format("error ({}): {}", error_kind_name(e.kind()), e.message()));
              throw;
            }
            if (!primary) return 0;
            if (r.interrupted_by != 0 || r.stopped_at_max_steps) {
              fmt::print(stderr, "{}: checkpoint written to {}/last.safetensors; continue with: gpuml train --resume {}\n",
                         r.interrupted_by != 0 ? fmt::format("stopped by signal {}", r.interrupted_by)
                                               : fmt::format("stopped after --max-steps {}", cfg->max_steps),
                         r.run_dir, r.run_dir);
              if (r.interrupted_by != 0) return 128 + r.interrupted_by;  // as a shell reports a signal
            }
            if (!r.replay_summary.empty()) fmt::print("{}\n", r.replay_summary);
            if (!r.all_reduce_summary.empty()) fmt::print("{}\n", r.all_reduce_summary);
            const std::string metric = r.metric_name == "accuracy" ? "acc" : r.metric_name;
            if (r.epochs_run == 0)  // stopped (--max-steps) before any epoch ended: no metric to report
              fmt::print("done: no epoch finished in this run, {:.1f} s training; run in {}\n", r.seconds_training, r.run_dir);
            else
              fmt::print("done: {}, train {} {:.4f}, {}, {:.1f} s training; run in {}\n", count_of(r.epochs_run, "epoch"),
                         metric, r.train_metric,
                         std::isnan(r.eval_metric)
                             ? std::string("no held-out data to evaluate")
                             : fmt::format("eval {} {:.4f} (best {:.4f})", metric, r.eval_metric, r.best_metric),
                         r.seconds_training, r.run_dir);
            return 0;
          }};
}

Command add_eval_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, device = "auto", precision = "fp32";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a trained model on a dataset (its test split if it has one)");
  cmd->add_option("--checkpoint", a->checkpoint, "A run directory or checkpoint file")->required();
  cmd->add_option("--data", a->data, "Dataset (default: the one the run trained on)");
  cmd->add_option("--device", a->device, "auto, cpu, ref or cuda[:N]")->capture_default_str()->check(device_name());
  add_precision_option(cmd, a->precision, kInferencePrecisionHelp);
  return {cmd, [a] {
            LoadedModel m = load_trained_model(a->checkpoint);
            fmt::print("model: {}\n", m.path);
            const Precision precision = inference_precision(a->precision, a->device);
            EvalReport r = evaluate_model(m, a->data, a->device, precision);
            fmt::print("{} samples ({}): loss {:.4f}, {} {:.4f}\n", r.count, r.split, r.loss, r.metric_name, r.metric);
            return 0;
          }};
}

Command add_predict_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, input, output, device = "auto", precision = "fp32";
    bool logits = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd =
      app.add_subcommand("predict", "Class probabilities and labels for IDX, PNG/JPEG, CSV, NPY or NPZ inputs");
  CLI::Option* checkpoint = cmd->add_option("--checkpoint", a->checkpoint, "A run directory or checkpoint file");
  cmd->add_option("--model", a->checkpoint, "An ONNX model (.onnx) instead of a checkpoint")->excludes(checkpoint);
  cmd->add_option("--input", a->input,
                  "IDX images (.gz or raw), a PNG/JPEG image or a directory of them, a .csv of features, an .npy or .npz")
      ->required();
  cmd->add_option("--output", a->output,
                  "A .csv (label,p0..) or .npy (probabilities; labels beside it); a language model: (N, T, V) .npy")
      ->required()
      ->check(file_extension({".csv", ".npy"}));
  cmd->add_flag("--logits", a->logits, "Write the model's raw outputs (logits) instead of probabilities");
  cmd->add_option("--device", a->device, "auto, cpu, ref or cuda[:N]")->capture_default_str()->check(device_name());
  add_precision_option(cmd, a->precision, kInferencePrecisionHelp);
  return {cmd, [a] {
            GPUML_CHECK(!a->checkpoint.empty(), "predict: give --checkpoint RUN or --model MODEL.onnx");
            LoadedModel m = load_trained_model(a->checkpoint);
            fmt::print("model: {}\n", m.path);
            const Precision precision = inference_precision(a->precision, a->device);
            PredictReport r = write_predictions(m, a->input, a->output, a->device, precision, a->logits);
            if (!r.notes.empty()) fmt::print(stderr, "note: {}: {}\n", a->input, r.notes);
            fmt::print("wrote {} predictions to {}\n", r.count, a->output);
            return 0;
          }};
}

}  // namespace gpuml::cli
