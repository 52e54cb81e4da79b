#!/usr/bin/env python3
"""Writes the PyTorch references of the engine's golden tests into tests/CudaSwa.Tests/Fixtures:
one <name>_golden.safetensors per model family, and reference_parameter_counts.json.

Each fixture is one network built in PyTorch with the state_dict names CudaSwa uses, at a size
small enough to keep in the repository, with random weights (BN scale, shift and running
statistics random too, so they matter), after ONE training-mode forward/backward on a fixed
random batch:
  <name>                 every parameter and BN running statistic BEFORE the step
  input, labels          the batch (labels as float32)
  logits, loss           outputs of the forward pass (mean cross-entropy)
  grad.<name>            every parameter gradient
  after.<name>           BN running statistics after the forward (momentum 0.1)
The families:
  resnet8                He et al. CIFAR ResNet, n=1 (bench/pytorch/cifar_models.py, as the benchmarks)
  preresnet8             PreResNet with basic blocks, n=1       } tests/golden/swa_reference_models.py,
  preresnet11-bottleneck PreResNet with bottleneck blocks, n=1  } written from the SWA reference
  vgg16-w4, vgg16bn-w4   VGG-16 (without / with BN), widths /16 } code's structure and names
  wrn10x2                WideResNet-10-2 (one block per stage)  }
reference_parameter_counts.json holds the parameter counts of the full-size networks of the SWA
paper (10 and 100 classes) as those definitions give them, for a test that does not trust our own.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py
Each batch is chosen (by trying input seeds) so that no ReLU input lies within 1e-5 of zero:
otherwise float32 differences of ~1e-7 between two correct implementations flip a ReLU mask
and move gradients by far more than rounding, which would test luck, not correctness.
The NUnit tests need no PyTorch: they only read the files. safetensors is written by hand
(8-byte little-endian header length, JSON header, raw data) so no extra package is needed.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "pytorch"))
sys.path.insert(0, HERE)
import cifar_models  # noqa: E402  the same model code the PyTorch benchmarks use
import swa_reference_models as ref  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "CudaSwa.Tests", "Fixtures")
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


cifar_models.F = _RecordingFunctional()  # the model code calls F.relu
ref.F = _RecordingFunctional()

FAMILIES = [
    ("resnet8", lambda: cifar_models.ResNetCifar(8)),
    ("preresnet8", lambda: ref.PreResNet(8, bottleneck=False)),
    ("preresnet11-bottleneck", lambda: ref.PreResNet(11, bottleneck=True)),
    ("vgg16-w4", lambda: ref.VGG(False, width=4, dropout=0.0)),
    ("vgg16bn-w4", lambda: ref.VGG(True, width=4, dropout=0.0)),
    ("wrn10x2", lambda: ref.WideResNet(10, 2)),
]


def randomise(model):
    """Random weights that keep activations of order 1: convolutions N(0, 2/(k*k*out)) as the
    reference code initialises them, small random biases, random BN scales, shifts and statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.normal_(0, (2.0 / n) ** 0.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def make(name, build, seed_base):
    torch.manual_seed(seed_base)
    model = build()
    if name != "resnet8":  # resnet8's fixture predates this and keeps its draws
        randomise(model)
    else:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for seed in range(5000):
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
        raise SystemExit(f"{name}: no input seed keeps every ReLU input away from zero")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    tensors = dict(before)
    tensors["input"] = x
    tensors["labels"] = labels.float()
    tensors["logits"] = logits.detach()
    tensors["loss"] = loss.detach().reshape(1)
    for pname, p in model.named_parameters():
        tensors["grad." + pname] = p.grad.detach()
    for k, v in model.state_dict().items():
        if "running" in k:
            tensors["after." + k] = v.detach()
    meta = {"torch": torch.__version__, "model": name, "input_seed": str(seed), "closest_relu_input": f"{closest:.3g}",
            "parameters": str(sum(p.numel() for p in model.parameters()))}
    write(os.path.join(FIXTURES, f"{name}_golden.safetensors"), tensors, meta)
    print(f"{name}: input seed {seed}, closest ReLU input {closest:.3g}, loss {loss.item():.6f}, {meta['parameters']} parameters")


def write(path, tensors, meta):
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def main():
    torch.set_num_threads(1)
    for i, (name, build) in enumerate(FAMILIES):
        make(name, build, 20261127 + i)
    counts = {name: {str(c): sum(p.numel() for p in build(c).parameters()) for c in (10, 100)} for name, build in ref.FULL_SIZE.items()}
    counts["__source__"] = "tests/golden/swa_reference_models.py (the SWA reference code's definitions), counted by PyTorch " + torch.__version__
    with open(os.path.join(FIXTURES, "reference_parameter_counts.json"), "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
        f.write("\n")
    print("reference parameter counts:", {k: v for k, v in counts.items() if k != "__source__"})


if __name__ == "__main__":
    main()
