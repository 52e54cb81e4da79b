#!/usr/bin/env python3
"""Prints the ratio table ours / PyTorch from two bench JSON files (cudaswa bench --json, bench_torch.py --json)."""
import json
import sys


def conv_table(ours, theirs):
    """The convolution roofline: per shape and pass, ours (the algorithm the backend runs, and the
    fastest of ours), PyTorch, and the FMA ceiling, in GFLOP/s of the direct convolution's count."""
    peak = ours.get("fma_peak_gflops") or 0
    t = {(r["shape"], r["pass"]): r["gflops"] for r in theirs.get("convolutions", [])}
    print(f"device: {ours['device_name']}  |  FMA ceiling {peak:.0f} GFLOP/s ({ours.get('fma_peak_width', '')})  |  PyTorch {theirs['libraries']['torch']}")
    print(f"{'convolution':26} {'pass':16} {'ours (runs)':>22} {'best of ours':>22} {'PyTorch':>9} {'ours/PyT':>9} {'of peak':>8}")
    for r in ours["convolutions"]:
        rates = r["gflops_by_algorithm"]
        chosen = rates.get(r["chosen"], 0)
        best_name = max(rates, key=rates.get)
        theirs_rate = t.get((r["shape"], r["pass"]))
        ratio = f"{chosen / theirs_rate:8.2f}x" if theirs_rate else f"{'-':>9}"
        of_peak = f"{100 * chosen / peak:7.0f}%" if peak else f"{'-':>8}"
        print(f"{r['shape']:26} {r['pass']:16} {chosen:10.1f} {r['chosen']:>11} {rates[best_name]:10.1f} {best_name:>11} "
              f"{(theirs_rate or 0):9.1f} {ratio} {of_peak}")


def main(ours_path, torch_path):
    ours, theirs = json.load(open(ours_path)), json.load(open(torch_path))
    if ours.get("convolutions"):
        conv_table(ours, theirs)
        return
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
