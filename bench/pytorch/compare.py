#!/usr/bin/env python3
"""Prints the ratio table ours / PyTorch from two bench JSON files (cudaswa bench --json, bench_torch.py --json)."""
import json
import sys


def main(ours_path, torch_path):
    ours, theirs = json.load(open(ours_path)), json.load(open(torch_path))
    t = {r["model"]: r for r in theirs["results"]}
    print(f"device: {ours['device_name']}  |  ours: {ours['libraries'].get('dotnet', '')}  |  PyTorch {theirs['libraries']['torch']}")
    print(f"{'model':10} {'metric':28} {'CudaSwa':>12} {'PyTorch':>12} {'ratio (ours/PyTorch)':>22}")
    rows = [("train_images_per_s", "train step (images/s)", True),
            ("eval_images_per_s", "eval (images/s)", True),
            ("bn_recompute_images_per_s", "BN recompute (images/s)", True),
            ("swa_update_ms", "SWA update (ms)", False)]
    for r in ours["results"]:
        p = t.get(r["model"])
        if p is None:
            continue
        for key, label, higher in rows:
            a, b = r.get(key), p.get(key)
            if a is None or b is None or a != a or b != b or a == 0 or b == 0:  # missing or NaN (--only swa)
                continue
            ratio = a / b if higher else b / a
            note = "x faster" if ratio >= 1 else "x (slower)"
            print(f"{r['model']:10} {label:28} {a:12.3f} {b:12.3f} {ratio:18.2f}{note}")
        print(f"{r['model']:10} {'SWA update / copy bandwidth':28} {100 * r['swa_update_fraction_of_copy']:11.0f}% {100 * p['swa_update_fraction_of_copy']:11.0f}%")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py OURS.json PYTORCH.json")
    main(sys.argv[1], sys.argv[2])
