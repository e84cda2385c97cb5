#!/usr/bin/env python3
"""Prints PyTorch's state_dict keys and shapes (and the parameter total) for the reference models
of bench/torch_fmnist.py, plus a BatchNorm model, to confirm the lists hard-coded in
tests/unit/nn_model_test.cpp. Not run by ctest (it needs torch): /usr/bin/python3 torch_state_dict.py
"""
import torch.nn as nn


def models():
    yield "mlp", nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                               nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    yield "cnn", nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    yield "bn", nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(144, 5))


for name, model in models():
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters")
    for key, value in model.state_dict().items():
        print(f"  {key} {tuple(value.shape)} {value.dtype}")
