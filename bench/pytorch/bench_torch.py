#!/usr/bin/env python3
"""PyTorch baseline for `cudaswa bench`: the same models, batch and measurements, same JSON shape.

  train step   SGD(momentum 0.9, wd 5e-4) + cross-entropy on a fixed random batch
  eval         model.eval() forward under torch.no_grad()
  BN recompute torch.optim.swa_utils.update_bn over a loader of the same number of images
  SWA update   torch.optim.swa_utils.AveragedModel.update_parameters(model)
  copy         a plain copy of a flat tensor with as many floats as the model has parameters

Each figure is the best of three timed repeats after warm-up, with torch.cuda.synchronize()
before the clock stops on a GPU. CPU runs use every core (torch.set_num_threads(os.cpu_count())).

  python3 bench/pytorch/bench_torch.py --device cpu --models resnet20 --json torch.json
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, update_bn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar_models  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def best(repeats, body, device):
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        body()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def measure(name, device, batch, steps, log, swa_only=False):
    torch.manual_seed(1)
    model = cifar_models.create(name).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32, device=device) * 2 - 1
    y = torch.arange(batch, device=device) % 10
    train_rate = eval_rate = bn_rate = float("nan")
    if swa_only:
        return swa_update(model, params, device, log) | {"model": name, "params": params, "batch": batch,
                                                         "train_images_per_s": train_rate, "eval_images_per_s": eval_rate,
                                                         "bn_recompute_images_per_s": bn_rate, "bn_recompute_epoch_fraction": float("nan")}

    def train_steps():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    model.train()
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    train = best(3, train_steps, device)
    train_rate = steps * batch / train
    log(f"  train step: {train_rate:.0f} images/s")

    model.eval()

    def eval_steps():
        with torch.no_grad():
            for _ in range(steps):
                model(x)

    eval_steps()
    evaluation = best(3, eval_steps, device)
    eval_rate = steps * batch / evaluation
    log(f"  eval: {eval_rate:.0f} images/s")

    count = max(batch * 2, steps * batch)
    images = torch.rand(count, 3, 32, 32, device=device)
    loader = [images[i:i + batch] for i in range(0, count, batch)]
    model.train()
    update_bn(loader, model, device=device)
    bn = best(3, lambda: update_bn(loader, model, device=device), device)
    bn_rate = count / bn
    log(f"  BN recompute (update_bn): {bn_rate:.0f} images/s")

    return swa_update(model, params, device, log) | {
        "model": name, "params": params, "batch": batch,
        "train_images_per_s": train_rate, "eval_images_per_s": eval_rate,
        "bn_recompute_images_per_s": bn_rate, "bn_recompute_epoch_fraction": train_rate / bn_rate}


def swa_update(model, params, device, log):
    swa = AveragedModel(model)
    swa.update_parameters(model)
    reps = 200 if device.type == "cuda" else 20

    def updates():
        for _ in range(reps):
            swa.update_parameters(model)

    update = best(3, updates, device) / reps
    src = torch.rand(params, device=device)
    dst = torch.empty_like(src)

    def copies():
        for _ in range(reps):
            dst.copy_(src)

    copy = best(3, copies, device) / reps
    nbytes = params * 4
    update_gbs, copy_gbs = 3 * nbytes / update / 1e9, 2 * nbytes / copy / 1e9
    log(f"  AveragedModel.update_parameters: {update * 1e3:.3f} ms ({update_gbs:.1f} GB/s); copy {copy * 1e3:.3f} ms ({copy_gbs:.1f} GB/s)")
    return {"swa_update_ms": update * 1e3, "swa_update_gb_per_s": update_gbs,
            "copy_ms": copy * 1e3, "copy_gb_per_s": copy_gbs, "swa_update_fraction_of_copy": update_gbs / copy_gbs}


def conv_rates(shapes_file, device, log):
    """Every convolution shape and pass of cudaswa's --only conv JSON, timed through PyTorch's own ops:
    F.conv2d, and aten.convolution_backward (what autograd calls) for the input and the weight gradient."""
    with open(shapes_file) as f:
        ours = json.load(f)["convolutions"]
    rows, seen = [], {}
    for r in ours:
        key = (r["shape"], r["pass"])
        if key in seen:
            continue
        spec, kern = r["shape"].split(" ")[0], r["shape"].split(" ")[1]
        chw, k = spec.split("->")
        c, h, w = (int(v) for v in chw.split("x"))
        k, kr = int(k), int(kern.split("x")[0])
        n, stride, pad = r["batch"], r["stride"], r["padding"]
        torch.manual_seed(1)
        x = torch.rand(n, c, h, w, device=device) * 2 - 1
        wt = torch.rand(k, c, kr, kr, device=device) * 2 - 1
        y = F.conv2d(x, wt, stride=stride, padding=pad)
        dy = torch.rand_like(y) * 2 - 1
        p = r["pass"]
        if p == "forward":
            body = lambda: F.conv2d(x, wt, stride=stride, padding=pad)  # noqa: E731
        else:
            mask = [p == "backward_data", p == "backward_filter", False]
            body = lambda: torch.ops.aten.convolution_backward(dy, x, wt, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)  # noqa: E731
        with torch.no_grad():
            for _ in range(3):
                body()
            # Best of 5 (ours: best of 3): on the 2-vCPU VMs single calls of PyTorch's ops varied up to 10x.
            t = best(5, body, device)
        rate = r["gflop"] / t
        seen[key] = rate
        rows.append({"shape": r["shape"], "pass": p, "gflop": r["gflop"], "gflops": rate})
        log(f"  {r['shape']:<26} {p:<16} {rate:7.1f} GFLOP/s")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--json")
    ap.add_argument("--only", default="all", choices=["all", "swa", "conv"], help="swa: only the SWA update and copy (for models too big to train here); conv: the convolutions of --shapes-from")
    ap.add_argument("--shapes-from", help="with --only conv: cudaswa's bench JSON, whose convolution shapes and passes are timed here")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN and cuBLAS (PyTorch's default for convolutions)")
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count())
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
    steps = a.steps or (50 if device.type == "cuda" else 5)
    log = lambda s: print(s, flush=True)  # noqa: E731
    results, convs = [], []
    if a.only == "conv":
        if not a.shapes_from:
            ap.error("--only conv needs --shapes-from CUDASWA_JSON")
        log(f"convolutions: PyTorch {torch.__version__} on {a.device}, {torch.get_num_threads()} threads")
        convs = conv_rates(a.shapes_from, device, log)
    for name in (a.models.split(",") if a.only != "conv" else []):
        log(f"{name}: PyTorch {torch.__version__} on {a.device}")
        results.append(measure(name, device, a.batch, steps, log, swa_only=a.only == "swa"))
    report = {
        "tool": "pytorch", "device": a.device,
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine(),
        "machine": f"{os.cpu_count()} logical cores, {platform.platform()}",
        "libraries": {"torch": torch.__version__, "threads": str(torch.get_num_threads()),
                      "cudnn": str(torch.backends.cudnn.version()) if device.type == "cuda" else "",
                      "tf32": "on" if a.tf32 else "off"},
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "method": f"best of 3 repeats after warm-up; {steps} steps per repeat; batch {a.batch}; random CIFAR-shaped data",
        "results": results,
        "convolutions": convs,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
