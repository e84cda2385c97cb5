# torch.matmul TFLOP/s at the sizes gpuml_bench's cuda_matmul runs, timed the same way: N
# back-to-back launches after a warm-up, between two CUDA events (tools/gpu-check.sh, verify).
#
#   python3 bench/torch_matmul.py --launches 20     # prints: dtype=bf16 n=4096 tflops=...
import argparse

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--launches", type=int, default=20)
ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
a = ap.parse_args()

for label, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for n in a.sizes:
        x = torch.rand(n, n, device="cuda", dtype=dtype)
        y = torch.rand(n, n, device="cuda", dtype=dtype)
        out = torch.empty(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            torch.matmul(x, y, out=out)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(a.launches):
            torch.matmul(x, y, out=out)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3
        print(f"dtype={label} n={n} tflops={2 * n ** 3 * a.launches / seconds / 1e12:.2f}", flush=True)
