#!/usr/bin/python3
"""Prints the expected values pasted into tests/unit/optim_torch_values_test.cpp.

Runs torch.optim.SGD / Adam / AdamW and torch.nn.utils.clip_grad_norm_ in float64 on fixed
parameters and three fixed gradients, and prints the parameters after each step as C++ arrays.
Produced with Debian's python3-torch 1.13:  /usr/bin/python3 tests/tools/optim_torch_reference.py
"""
import torch

torch.set_default_dtype(torch.float64)

PARAMS = [0.5, -1.25, 2.0, 0.125, -0.75]
GRADS = [
    [0.3, -0.2, 1.5, -0.05, 0.8],
    [-0.4, 0.1, 0.9, 0.25, -0.6],
    [0.2, 0.7, -1.1, 0.05, 0.35],
]

CONFIGS = {
    "sgd_plain_wd": lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam_l2": lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1),
}


def fmt(values):
    return "{" + ", ".join(repr(float(v)) for v in values) + "}"


def main():
    print("// torch", torch.__version__)
    for name, make in CONFIGS.items():
        p = torch.tensor(PARAMS, requires_grad=True)
        opt = make([p])
        rows = []
        for g in GRADS:
            p.grad = torch.tensor(g)
            opt.step()
            rows.append(fmt(p.detach().tolist()))
        print(f"// {name}: params after steps 1, 2, 3")
        print("{" + ",\n ".join(rows) + "}")
    for max_norm in (1.0, 0.5, 100.0):
        a = torch.tensor(GRADS[0], requires_grad=True)
        b = torch.tensor(GRADS[1], requires_grad=True)
        a.grad = torch.tensor(GRADS[0])
        b.grad = torch.tensor(GRADS[1])
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
        print(f"// clip_grad_norm_([GRADS[0], GRADS[1]], {max_norm}): total norm {float(norm)!r}, clipped grads")
        print(fmt(a.grad.tolist() + b.grad.tolist()))


if __name__ == "__main__":
    main()
