# The PyTorch peer of `gpuml train --precision bf16`: runs a training script (normally
# ../shared/bench/torch_fmnist.py, unchanged, with its arguments) with the model's forward pass
# under torch.autocast(dtype=torch.bfloat16), the usual recipe: matmul/conv in bf16, f32 logits
# into the loss, f32 weights and optimizer state, backward and step outside autocast. (Wrapping
# the whole script in autocast instead made PyTorch 1.13 on CPU train to chance accuracy.)
#
#   python3 bench/torch_autocast_bf16.py ../shared/bench/torch_fmnist.py cnn 1 --threads 2
import importlib.util
import sys

import torch

script = sys.argv[1]
sys.argv = sys.argv[1:]
device = "cpu"
if "--device" in sys.argv:
    device = "cuda" if sys.argv[sys.argv.index("--device") + 1].startswith("cuda") else "cpu"

spec = importlib.util.spec_from_file_location("peer", script)
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)


class Autocast(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            return self.model(x).float()


build = peer.build
peer.build = lambda kind: Autocast(build(kind))
peer.main()
