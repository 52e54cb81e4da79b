#!/usr/bin/env python3
"""Loads a CudaSwa safetensors file (model.safetensors / swa.safetensors) into the same model built
in PyTorch with load_state_dict, and prints the eval-mode logits of an input batch as JSON — the
check that our files are PyTorch state_dicts. Uses the `safetensors` package when present, else a
small reader of the format (8-byte little-endian header length, JSON header, raw data).

  python3 bench/pytorch/load_weights.py --model resnet20 --weights swa.safetensors --input x.f32 --batch 4
"""
import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar_models  # noqa: E402


def read_safetensors(path):
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(data[8 + n + begin:8 + n + end]), dtype=torch.float32)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True, help="raw float32 NCHW batch")
    ap.add_argument("--batch", type=int, required=True)
    a = ap.parse_args()
    model = cifar_models.create(a.model)
    state = read_safetensors(a.weights)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        sys.exit(f"state_dict mismatch: missing {missing}, unexpected {result.unexpected_keys}")
    x = torch.from_numpy(__import__("numpy").fromfile(a.input, dtype="<f4").reshape(a.batch, 3, 32, 32))
    model.eval()
    with torch.no_grad():
        logits = model(x)
    print(json.dumps({"loaded": len(state), "logits": logits.flatten().tolist()}))


if __name__ == "__main__":
    main()
