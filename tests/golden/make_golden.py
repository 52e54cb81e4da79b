#!/usr/bin/env python3
"""Writes tests/CudaSwa.Tests/Fixtures/resnet8_golden.safetensors: a PyTorch reference for the
engine's whole-network golden test.

It builds CudaSwa's `resnet8` (He et al. CIFAR ResNet, n=1, 1x1-conv+BN projection shortcuts)
in PyTorch with the same state_dict names (bench/pytorch/cifar_models.py), draws random weights (BN scale/shift random too, so
they matter), runs ONE training-mode forward/backward on a fixed random batch, and stores:
  <name>                 every parameter and BN running statistic BEFORE the step
  input, labels          the batch (labels as float32)
  logits, loss           outputs of the forward pass (mean cross-entropy)
  grad.<name>            every parameter gradient
  after.<name>           BN running statistics after the forward (momentum 0.1)

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py
The batch is chosen (by trying input seeds) so that no ReLU input lies within 1e-5 of zero:
otherwise float32 differences of ~1e-7 between two correct implementations flip a ReLU mask
and move gradients by far more than rounding, which would test luck, not correctness.
The NUnit test needs no PyTorch: it only reads the file. safetensors is written by hand
(8-byte little-endian header length, JSON header, raw data) so no extra package is needed.
"""
import json
import os
import struct

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "pytorch"))
import cifar_models  # noqa: E402  the same model code the PyTorch benchmarks use

torch.manual_seed(20261127)
torch.set_num_threads(1)

BATCH = 4
MARGIN = 1e-5
PRE_RELU = []


def relu(t):
    """F.relu that records its input, to measure how close any input is to the kink."""
    PRE_RELU.append(t.detach())
    return F.relu(t)


class _RecordingFunctional:
    """torch.nn.functional with relu replaced by the recording one above."""

    def __getattr__(self, name):
        return relu if name == "relu" else getattr(F, name)


cifar_models.F = _RecordingFunctional()  # the shared model code calls F.relu


def ResNet8():
    return cifar_models.ResNetCifar(8)


def main():
    model = ResNet8()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for seed in range(1000):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(BATCH, 3, 32, 32, generator=gen)
        labels = torch.randint(0, 10, (BATCH,), generator=gen)
        PRE_RELU.clear()
        with torch.no_grad():
            model.eval()  # probe without touching the running statistics...
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.train()  # ...but with batch statistics, exactly as the real pass
                    m.momentum = 0.0
            model(x)
        closest = min(float(t.abs().min()) for t in PRE_RELU)
        if closest >= MARGIN:
            break
    else:
        raise SystemExit("no input seed keeps every ReLU input away from zero")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    model.train()
    print(f"input seed {seed}: closest ReLU input to zero {closest:.3g}")
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    tensors = dict(before)
    tensors["input"] = x
    tensors["labels"] = labels.float()
    tensors["logits"] = logits.detach()
    tensors["loss"] = loss.detach().reshape(1)
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach()
    for k, v in model.state_dict().items():
        if "running" in k:
            tensors["after." + k] = v.detach()

    header, blobs, offset = {"__metadata__": {"torch": torch.__version__, "model": "resnet8", "input_seed": str(seed), "closest_relu_input": f"{closest:.3g}"}}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    out = os.path.join(os.path.dirname(__file__), "..", "CudaSwa.Tests", "Fixtures", "resnet8_golden.safetensors")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    print(f"wrote {os.path.normpath(out)}: {len(tensors)} tensors, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
