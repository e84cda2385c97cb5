#!/usr/bin/env python3
"""Peer for bench/dist_vs_torch_ddp.sh: PyTorch DistributedDataParallel on the gloo backend,
RANKS processes x 1 thread, the mlp or cnn preset on Fashion-MNIST, Adam 1e-3.

  torch_ddp_peer.py MODEL STEPS [--ranks 2] [--batch-size 64] [--data DIR] [--port 29600]

--batch-size is per rank, as gpuml's; every rank takes its rows of the same shuffled global batch.
The models are bench/../shared/bench/torch_fmnist.py's (gpuml's presets). The processes are
started by torch.multiprocessing.spawn and meet over torch.distributed's TCP store at
127.0.0.1:--port (the torchrun-style rendezvous). The timed loop is every step, the first one
included (gpuml's "s training" includes its first step, which plans the graphs); data stays in
memory on both sides. Prints one line: samples_per_s over the global batch, and ms_per_step.
"""
import argparse, gzip, os, struct, time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def load(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return read_idx(p)
    raise SystemExit(f"missing {stem}[.gz] in {data_dir}")


def build(kind):  # as torch_fmnist.py's build(): gpuml's mlp and cnn presets
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                             nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def worker(rank, a):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(a.port))
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    torch.manual_seed(0)
    x = torch.tensor(load(a.data, "train-images-idx3-ubyte"), dtype=torch.float32).div_(255).unsqueeze(1)
    y = torch.tensor(load(a.data, "train-labels-idx1-ubyte"), dtype=torch.int64)
    model = nn.parallel.DistributedDataParallel(build(a.model))  # broadcasts rank 0's weights
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    global_batch = a.batch_size * a.ranks
    perm = torch.randperm(len(x))  # the same on every rank (same seed)
    dist.barrier()
    t0 = time.perf_counter()
    at = 0
    for _ in range(a.steps):
        if at + global_batch > len(x):
            perm, at = torch.randperm(len(x)), 0
        rows = perm[at + rank * a.batch_size: at + (rank + 1) * a.batch_size]
        at += global_batch
        loss = F.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces the gradient in buckets, overlapping backward
        opt.step()
    dist.barrier()
    seconds = time.perf_counter() - t0
    if rank == 0:
        print(f"peer=torch-{torch.__version__}-ddp-gloo model={a.model} ranks={a.ranks} threads=1 "
              f"batch={a.batch_size} steps={a.steps} seconds={seconds:.3f} "
              f"samples_per_s={global_batch * a.steps / seconds:.0f} ms_per_step={1000 * seconds / a.steps:.2f}",
              flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["mlp", "cnn"])
    ap.add_argument("steps", type=int)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--port", type=int, default=29600)
    a = ap.parse_args()
    mp.spawn(worker, args=(a,), nprocs=a.ranks, join=True)


if __name__ == "__main__":
    main()
