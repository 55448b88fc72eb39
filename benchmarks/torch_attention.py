#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at the seed model's attention shapes, timed the way
bench_kernels times our attention kernel, for the side-by-side table of docs/kernels.md.

  torch_attention.py [--device cuda|cpu] [--setups 64x3x64,32x1x128] [--dtypes fp32,bf16] [--runs 20]
                     [--json FILE]

For each setup (SIZExCHANNELSxBATCH) the six SelfAttention layers of the seed U-Net (b = 64, 4
heads) attend over the pixels of a 1/2, 1/4, 1/8, 1/4, 1/2 and full-size map with 128, 256, 256,
128, 64 and 64 channels; each distinct (tokens, channels) is timed once. q, k, v are [B, 4, L, D]
(D = C / 4). Forward: SDPA alone. Backward: forward + backward minus the forward. Median of --runs
timed runs (CUDA events) after 3 warm-ups; FLOPs 4 B L^2 C forward and 2.5x that backward (the
convention of bench_kernels). Records use bench_kernels' setup and shape names
("64px-rgb-b64", "BxLx3C h4"), so benchmarks/report.py attention can pair them.
"""
import argparse
import datetime
import json
import statistics
import time

from torch_twin import import_torch, int_at_least, names_arg, setups_arg

HEADS = 4


def attention_layers(size, base=64):
    """(side, channels) of the six SelfAttention layers, in the order of the forward."""
    b = base
    return [(size // 2, 2 * b), (size // 4, 4 * b), (size // 8, 4 * b), (size // 4, 2 * b), (size // 2, b), (size, b)]


def timed(fn, runs, device):
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            out.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(out)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when PyTorch sees one, else cpu")
    ap.add_argument("--setups", type=setups_arg, default="64x3x64,32x1x128",
                    help="SIZExCHANNELSxBATCH, comma-separated; SIZE a multiple of 8")
    ap.add_argument("--dtypes", type=names_arg(("fp32", "bf16")), default="fp32,bf16")
    ap.add_argument("--runs", type=int_at_least(1), default=20)
    ap.add_argument("--base", type=int_at_least(1), default=64)
    ap.add_argument("--json")
    return ap.parse_args()


def main(args, device):
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    records = []
    print("| setup | shape | dtype | fwd ms | fwd TFLOP/s | bwd ms | bwd TFLOP/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for size, channels, batch in args.setups:
        name = f"{size}px-{'rgb' if channels == 3 else 'gray'}-b{batch}"
        for side, c in dict.fromkeys(attention_layers(size, args.base)):
            L, D = side * side, c // HEADS
            flops = 4.0 * batch * L * L * c
            for dname in args.dtypes:
                dt = dtypes[dname]
                q, k, v = (torch.randn(batch, HEADS, L, D, device=device, dtype=dt, requires_grad=True) for _ in range(3))
                g = torch.randn(batch, HEADS, L, D, device=device, dtype=dt)
                fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v), args.runs, device)
                both = timed(lambda: F.scaled_dot_product_attention(q, k, v).backward(g), args.runs, device)
                bwd = max(both - fwd, 1e-6)
                r = {"setup": name, "shape": f"{batch}x{L}x{3 * c} h{HEADS}", "dtype": dname, "fwd_ms": fwd,
                     "bwd_ms": bwd, "fwd_tflops": flops / fwd / 1e9, "bwd_tflops": 2.5 * flops / bwd / 1e9}
                records.append(r)
                print(f"| {name} | {r['shape']} | {dname} | {fwd:.3f} | {r['fwd_tflops']:.1f} | {bwd:.3f} | "
                      f"{r['bwd_tflops']:.1f} |", flush=True)
                del q, k, v, g
    if args.json:
        doc = {"tool": "torch_attention", "torch": torch.__version__, "runs": args.runs,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "records": records}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    args = parse_args()
    torch, device = import_torch("torch_attention", args.device)
    import torch.nn.functional as F
    main(args, device)
