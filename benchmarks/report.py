#!/usr/bin/env python3
"""Markdown tables from bench_kernels / bench_conv JSON (benchmarks/results/), for docs/kernels.md.

usage: benchmarks/report.py kernels FILE.json   # memory-bound ops: time and fraction of copy bandwidth
       benchmarks/report.py conv FILE.json      # ours vs cuDNN, summed over a training step's convs
"""
import json
import sys


def kernels(doc):
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}; device-to-device copy "
          f"{doc['copy_gbps']:.0f} GB/s (read + written); median of {doc['runs']} runs, L2 flushed.\n")
    print("| setup | op | pass | shape | us | GB/s | of copy |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in doc["records"]:
        if "median_us" not in r or r["flops"] or r["bytes"] < 8e6:  # memory-bound, large enough to matter
            continue
        if r["copy_fraction"] > 1.5:  # a backward that only hands its gradient on moves no bytes
            continue
        print(f"| {r['setup']} | {r['op']} | {r['pass']} | {r['shape']} | {r['median_us']:.1f} | "
              f"{r['gbps']:.0f} | {100 * r['copy_fraction']:.0f}% |")


def conv(doc):
    print(f"{doc['device']}, {doc['date'][:10]}, commit {doc['commit']}; every conv of one training step "
          f"(forward, data and filter gradients, times uses per step), summed:\n")
    print("| setup | variant | ms per step | our speed vs cuDNN |")
    print("|---|---|---:|---:|")
    t = {(r["setup"], r["variant"]): r["us"] for r in doc["totals"]}
    for (setup, variant), us in t.items():
        kind = variant.split("-")[1]
        ratio = t[(setup, "cudnn-" + kind)] / us if variant.startswith("ours") else None
        print(f"| {setup} | {variant} | {us / 1e3:.2f} | {f'{ratio:.2f}x' if ratio else ''} |")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("kernels", "conv"):
        sys.exit(__doc__)
    {"kernels": kernels, "conv": conv}[sys.argv[1]](json.load(open(sys.argv[2])))
