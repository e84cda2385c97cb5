# The PyTorch peer of `gpuml train` on the GPU check (tools/gpu-check.sh): runs a training script
# (normally ../shared/bench/torch_fmnist.py, unchanged, with its arguments) under the precision
# gpuml runs, and reports PyTorch's own peak of allocated GPU memory.
#
#   --precision fp32: TF32 off for matmul and cuDNN (gpuml's fp32 is exact f32 too);
#   --precision bf16: the forward pass under torch.autocast(bfloat16), as bench/torch_autocast_bf16.py.
#
#   python3 bench/torch_peer.py --precision fp32 ../shared/bench/torch_fmnist.py mlp 1 --device cuda
import importlib.util
import sys

import torch

args = sys.argv[1:]
precision = "fp32"
if args[:1] == ["--precision"]:
    precision, args = args[1], args[2:]
script = args[0]
sys.argv = args
device = "cpu"
if "--device" in sys.argv:
    device = "cuda" if sys.argv[sys.argv.index("--device") + 1].startswith("cuda") else "cpu"

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

spec = importlib.util.spec_from_file_location("peer", script)
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)

# torch.compile compiles on the first call of each new input shape, inside the peer's timed epoch:
# compile here, before the clock starts, for the full batch and for the last, shorter one.
if "--compile" in sys.argv:
    original_compile = torch.compile
    batch = int(sys.argv[sys.argv.index("--batch-size") + 1]) if "--batch-size" in sys.argv else 128
    data_dir = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else "/usr/share/datasets/fashion-mnist"

    def compile_and_warm(model, *args, **kwargs):
        compiled = original_compile(model, *args, **kwargs)
        n_train = len(peer.load(data_dir, "train-labels-idx1-ubyte"))
        dev = next(model.parameters()).device
        for rows in sorted({batch, n_train % batch} - {0}):
            x = torch.zeros(rows, 1, 28, 28, device=dev)
            torch.nn.functional.cross_entropy(compiled(x), torch.zeros(rows, dtype=torch.int64, device=dev)).backward()
        model.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return compiled

    torch.compile = compile_and_warm

if precision == "bf16":
    class Autocast(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                return self.model(x).float()

    build = peer.build
    peer.build = lambda kind: Autocast(build(kind))
elif precision != "fp32":
    raise SystemExit(f"torch_peer.py: unknown precision {precision}")

peer.main()
if device == "cuda":
    print(f"peer_precision={precision} tf32=0 torch_max_allocated_mib={torch.cuda.max_memory_allocated() / 2**20:.0f} "
          f"torch_max_reserved_mib={torch.cuda.max_memory_reserved() / 2**20:.0f}")
