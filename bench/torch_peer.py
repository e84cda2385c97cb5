# Runs the PyTorch peer (normally ../shared/bench/torch_fmnist.py, unchanged, with its arguments)
# with two optional changes that the comparison needs, each a flag before the script:
#
#   --bf16          the model's forward pass under torch.autocast(dtype=torch.bfloat16), the usual
#                   recipe and the peer of `gpuml train --precision bf16`: matmul/conv in bf16, f32
#                   logits into the loss, f32 weights and optimizer state, backward and step outside
#                   autocast. (Wrapping the whole script instead trained PyTorch 1.13 on CPU to chance.)
#   --warm-compile  with the peer's --compile: torch.compile's graphs are built before the timed
#                   loop, by one forward+backward on random data of each batch shape an epoch has
#                   (the full batch and the last, shorter one), so s_per_epoch is the compiled steady
#                   state; the compile time is printed on stderr. Parameters are not stepped, grads
#                   are cleared, and the warm-up draws from its own generator, so training is unchanged.
#
#   python3 bench/torch_peer.py --bf16 ../shared/bench/torch_fmnist.py cnn 1 --threads 2
#   python bench/torch_peer.py --warm-compile ../shared/bench/torch_fmnist.py mlp 1 --compile
import importlib.util
import sys
import time

import torch
import torch.nn.functional as F

flags = set()
while len(sys.argv) > 1 and sys.argv[1] in ("--bf16", "--warm-compile"):
    flags.add(sys.argv.pop(1))
script = sys.argv[1]
sys.argv = sys.argv[1:]


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


device = "cuda" if arg("--device", "cpu").startswith("cuda") else "cpu"
batch = int(arg("--batch-size", "128"))
train_samples = 60000  # Fashion-MNIST's training set: its last batch is 60000 % batch samples

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


if "--bf16" in flags:
    build = peer.build
    peer.build = lambda kind: Autocast(build(kind))

if "--warm-compile" in flags:
    compile_now = torch.compile

    def compile_and_warm(model, *args, **kwargs):
        compiled = compile_now(model, *args, **kwargs)
        gen = torch.Generator(device=device).manual_seed(12345)
        start = time.perf_counter()
        for n in sorted({batch, train_samples % batch or batch}):
            x = torch.rand(n, 1, 28, 28, generator=gen, device=device)
            y = torch.randint(0, 10, (n,), generator=gen, device=device)
            F.cross_entropy(compiled(x), y).backward()
        for p in model.parameters():
            p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"torch.compile warm-up (compile time): {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return compiled

    torch.compile = compile_and_warm

peer.main()
