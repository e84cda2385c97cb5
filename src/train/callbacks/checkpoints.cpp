#include "train/callbacks.h"

namespace gpuml {

// Every rank comes here; under --zero 1 each holds a share of the optimizer state, which they
// gather (a collective) before rank 0 writes.
void Checkpoints::on_step_end(TrainState& st) {
  if (st.last_batch) return;  // the epoch's end saves its own
  const int64_t every = st.config->checkpoint_every;
  if (!st.stopping() && !(every > 0 && st.progress.step % every == 0)) return;
  st.runner->gather_sharded_state();
  if (st.primary) save_checkpoint(st.run_dir / "last.safetensors", st.checkpoint(st.mid_epoch_progress()));
}

void Checkpoints::on_epoch_end(TrainState& st) {
  st.runner->gather_sharded_state();
  if (!st.primary) return;
  Checkpoint ck = st.checkpoint(st.progress);
  save_checkpoint(st.run_dir / "last.safetensors", ck);
  if (st.epoch_summary.improved) save_checkpoint(st.run_dir / "best.safetensors", ck);
  // Without held-out data no epoch is "best": the weights for PyTorch are the last epoch's.
  if (st.epoch_summary.improved || st.eval_name.empty())
    save_safetensors(st.run_dir / "model.safetensors", ck.model, {{"format", "pt"}});
}

void EarlyStopping::on_epoch_end(TrainState& st) {
  // A run already stopping (a signal, --max-steps) stops for that reason.
  if (patience_ > 0 && !st.stopping() && st.progress.epochs_without_improvement >= patience_) st.stop_early = true;
}

}  // namespace gpuml
