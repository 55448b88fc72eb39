#!/usr/bin/env python3
"""PyTorch's speed on the seed model, measured the way bench_train and bench_sample measure ours.

  torch_twin.py [--device cuda|cpu] [--setups 64x3x64,32x1x128] [--modes fp32,bf16,compile]
                [--steps 20] [--warmup 3] [--base 64] [--json FILE]

A setup is SIZExCHANNELSxBATCH. Modes: fp32 (eager; PyTorch's default lets cuDNN use TF32 for
convolutions), bf16 (eager under bf16 autocast), compile (bf16 autocast + torch.compile).
For each: a training step is noising + forward + MSE + backward + AdamW (lr 3e-4), as in
../shared/docs/performance-anchors.md; a reverse step is one forward at t = 500 plus the DDPM
update. Times are CUDA events around --steps steps after --warmup ones (wall clock on the CPU);
first_step_s is from building the model to the end of the first training step (torch.compile's
compilation lands there). Peak memory is torch.cuda.max_memory_allocated over the training steps.
The network is tools/torch_unet.py, the same twin that writes the reference files.
"""
import argparse
import datetime
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))


# Argument checks and the PyTorch import, shared with torch_attention.py. torch is imported after the
# arguments are parsed, so --help and a bad flag answer without it.
def int_at_least(low):
    """An argparse type: an integer >= LOW."""
    def parse(text):
        if not re.fullmatch(r"[+-]?\d+", text.strip()) or int(text) < low:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer >= {low}")
        return int(text)
    return parse


def setups_arg(text):
    """An argparse type: SIZExCHANNELSxBATCH, comma-separated, as (size, channels, batch) tuples."""
    setups = []
    for item in text.split(","):
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", item.strip(), re.ASCII)
        if not m:
            raise argparse.ArgumentTypeError(f"'{item}' is not SIZExCHANNELSxBATCH, e.g. 64x3x64")
        size, channels, batch = (int(v) for v in m.groups())
        if size == 0 or size % 8:  # the U-Net halves the image three times
            raise argparse.ArgumentTypeError(f"'{item}': SIZE {size} is not a multiple of 8")
        if channels == 0 or batch == 0:
            raise argparse.ArgumentTypeError(f"'{item}': CHANNELS and BATCH must be at least 1")
        setups.append((size, channels, batch))
    return setups


def names_arg(valid):
    """An argparse type: a comma-separated list of names out of VALID."""
    def parse(text):
        names = text.split(",")
        for name in names:
            if name not in valid:
                raise argparse.ArgumentTypeError(f"'{name}' is not one of {', '.join(valid)}")
        return names
    return parse


def import_torch(tool, device):
    """torch and the torch.device of --device DEVICE (default: cuda when PyTorch sees one, else cpu);
    without PyTorch, or for cuda without a device, one line and exit status 1."""
    try:
        import torch
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        sys.exit(f"{tool}: PyTorch is not installed (pip install torch)")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"{tool}: PyTorch sees no CUDA device (--device cpu times the CPU)")
    return torch, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def schedule(device):
    beta = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - beta, 0)
    return beta.float().to(device), (1 - beta).float().to(device), abar.float().to(device)


class Clock:
    """Elapsed seconds of a block of GPU work (CUDA events) or CPU work (wall clock)."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def run(setup, mode, args, device):
    size, channels, batch = setup
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_start = time.perf_counter()
    model = UNet(channels, channels, args.base, args.time_dim, 10, 4).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    net = torch.compile(model) if mode == "compile" else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != "fp32")
    beta, alpha, abar = schedule(device)
    x0 = torch.rand(batch, channels, size, size, device=device) * 2 - 1
    y = torch.randint(0, 10, (batch,), device=device)

    def train_step():
        t = torch.randint(1, 1000, (batch,), device=device)
        eps = torch.randn_like(x0)
        a = abar[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        with autocast:
            loss = F.mse_loss(net(x_t, t, y).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    first_step_s = time.perf_counter() - t_start
    for _ in range(args.warmup):
        train_step()
    with Clock(device) as train:
        for _ in range(args.steps):
            train_step()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None

    t = torch.full((batch,), 500, device=device)
    c_x = 1 / alpha[500].sqrt()
    c_eps = beta[500] / (1 - abar[500]).sqrt() / alpha[500].sqrt()
    sigma = beta[500].sqrt()
    x = torch.randn_like(x0)

    @torch.no_grad()
    def reverse_step(x):
        with autocast:
            eps = net(x, t, y).float()
        return c_x * x - c_eps * eps + sigma * torch.randn_like(x)

    for _ in range(args.warmup):
        x = reverse_step(x)
    with Clock(device) as reverse:
        for _ in range(args.steps):
            x = reverse_step(x)
    return {
        "setup": f"{size}x{size}x{channels} b{batch}", "mode": mode,
        "train_img_s": batch * args.steps / train.seconds,
        "reverse_img_steps_s": batch * args.steps / reverse.seconds,
        "peak_gib": peak, "first_step_s": first_step_s,
    }


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when PyTorch sees one, else cpu")
    ap.add_argument("--setups", type=setups_arg, default="64x3x64,32x1x128",
                    help="SIZExCHANNELSxBATCH, comma-separated; SIZE a multiple of 8")
    ap.add_argument("--modes", type=names_arg(("fp32", "bf16", "compile")), default="fp32,bf16,compile")
    ap.add_argument("--steps", type=int_at_least(1), default=20)
    ap.add_argument("--warmup", type=int_at_least(0), default=3)
    ap.add_argument("--base", type=int_at_least(1), default=64, help="U-Net width b (64 = the seed)")
    ap.add_argument("--time-dim", type=int_at_least(1), default=256)
    ap.add_argument("--json", help="write the results here")
    return ap.parse_args()


def main(args, device):
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    records = []
    print("| setup | mode | train img/s | reverse img-steps/s | peak GiB | first step s |")
    print("|---|---|---:|---:|---:|---:|")
    for setup in args.setups:
        for mode in args.modes:
            r = run(setup, mode, args, device)
            records.append(r)
            peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
            print(f"| {r['setup']} | {mode} | {r['train_img_s']:.0f} | {r['reverse_img_steps_s']:.0f} | {peak} | "
                  f"{r['first_step_s']:.1f} |", flush=True)
    if args.json:
        doc = {"tool": "torch_twin", "device": name, "torch": torch.__version__,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "base": args.base, "steps": args.steps, "warmup": args.warmup, "records": records}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    args = parse_args()
    torch, device = import_torch("torch_twin", args.device)
    import torch.nn.functional as F
    from torch_unet import UNet
    main(args, device)
