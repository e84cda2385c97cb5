# Runs the PyTorch peer (normally ../shared/bench/torch_fmnist.py, unchanged, with its arguments)
# under the precision gpuml runs, with torch.compile's graphs built before the timed loop, and on a
# GPU reports PyTorch's own peak of allocated memory. Used by bench/train_vs_torch.sh (CPU) and
# tools/gpu-check.sh (GPU).
#
#   --precision fp32  (default) TF32 off for matmul and cuDNN: gpuml's fp32 is exact f32 too.
#   --precision bf16  the model's forward pass under torch.autocast(dtype=torch.bfloat16), the usual
#                     recipe and the peer of `gpuml train --precision bf16`: matmul/conv in bf16, f32
#                     logits into the loss, f32 weights and optimizer state, backward and step outside
#                     autocast. (Wrapping the whole script instead trained PyTorch 1.13 on CPU to chance.)
#   with the peer's --compile: torch.compile compiles on the first call of each new input shape,
#   inside the peer's timed epoch; here it compiles before the clock starts, by one forward+backward
#   on random data of each batch shape an epoch has (the full batch and the last, shorter one), so
#   s_per_epoch is the compiled steady state. The compile time goes to stderr. Parameters are not
#   stepped, grads are cleared and the warm-up draws from its own generator: training is unchanged.
#
#   python3 bench/torch_peer.py --precision bf16 ../shared/bench/torch_fmnist.py cnn 1 --threads 2
#   python3 bench/torch_peer.py ../shared/bench/torch_fmnist.py mlp 1 --compile --device cuda
import importlib.util
import sys
import time

import torch
import torch.nn.functional as F

args = sys.argv[1:]
precision = "fp32"
if args[:1] == ["--precision"]:
    precision, args = args[1], args[2:]
if precision not in ("fp32", "bf16"):
    raise SystemExit(f"torch_peer.py: unknown precision {precision} (fp32, bf16)")
script = args[0]
sys.argv = args


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


device = "cuda" if arg("--device", "cpu").startswith("cuda") else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

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


if precision == "bf16":
    build = peer.build
    peer.build = lambda kind: Autocast(build(kind))

if "--compile" in sys.argv:
    compile_now = torch.compile
    batch = int(arg("--batch-size", "128"))
    train_samples = len(peer.load(arg("--data", "/usr/share/datasets/fashion-mnist"), "train-labels-idx1-ubyte"))

    def compile_and_warm(model, *args, **kwargs):
        compiled = compile_now(model, *args, **kwargs)
        dev = next(model.parameters()).device
        gen = torch.Generator(device=dev).manual_seed(12345)
        start = time.perf_counter()
        for rows in sorted({batch, train_samples % batch} - {0}):
            x = torch.rand(rows, 1, 28, 28, generator=gen, device=dev)
            y = torch.randint(0, 10, (rows,), generator=gen, device=dev)
            F.cross_entropy(compiled(x), y).backward()
        model.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        print(f"torch.compile warm-up (compile time): {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return compiled

    torch.compile = compile_and_warm

peer.main()
if device == "cuda":
    print(f"peer_precision={precision} tf32=0 torch_max_allocated_mib={torch.cuda.max_memory_allocated() / 2**20:.0f} "
          f"torch_max_reserved_mib={torch.cuda.max_memory_reserved() / 2**20:.0f}")
