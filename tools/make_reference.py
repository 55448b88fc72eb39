#!/usr/bin/env python3
"""Writes ddpm-reference v1 files: a float64 PyTorch run of the seed U-Net (../shared/docs/seed-model.md).

The network is tools/torch_unet.py. One file holds the weights, one training batch, the model's
output, the loss, every gradient and every parameter after one AdamW step, all stored as float32
(the weights and inputs are rounded to float32 *before* the float64 run, so a float32 engine sees
exactly the same values).

  make_reference.py --size 16 --channels 1 --base 4 --time-dim 32 --classes 10 --batch 2 -o ref.safetensors
  make_reference.py --verify ref.safetensors       # re-run a file's inputs through this twin
  make_reference.py --dump-keys keys.txt           # the seed's state_dict names and shapes
"""
import argparse

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from torch_unet import UNet


# AdamW: PyTorch's defaults with lr 1e-3 (the seed trains at 3e-4). The engine compares AdamW steps,
# and a stored float32 weight carries a rounding error of ~6e-8 |w|: the larger step keeps that
# well under the tolerance.
ADAMW = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)


def train_step(model, x_t, t, y, eps, adamw, step_grads=None):
    """One forward, MSE loss, backward and AdamW step; returns the file's result tensors. With
    `step_grads` (name -> tensor) the AdamW step uses those gradients instead of the backward's."""
    model.zero_grad()
    eps_pred = model(x_t, t, y)
    loss = F.mse_loss(eps_pred, eps)
    loss.backward()
    out = {"eps_pred": eps_pred.detach(), "loss": loss.detach()}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.detach().clone()
        if step_grads is not None:
            p.grad.copy_(step_grads[name])
    opt = torch.optim.AdamW(model.parameters(), lr=adamw["lr"], betas=(adamw["beta1"], adamw["beta2"]),
                            eps=adamw["eps"], weight_decay=adamw["weight_decay"])
    opt.step()
    for name, p in model.named_parameters():
        out["adamw." + name] = p.detach().clone()
    return out


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def generate(args):
    torch.manual_seed(args.seed)
    model = UNet(args.channels, args.channels, args.base, args.time_dim, args.classes, args.heads)
    with torch.no_grad():
        # Move biases and norm weights away from their 0 / 1 initialisation so a swapped or
        # ignored parameter shows up, then round everything to float32.
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(p + 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            p.copy_(p.float())
    model.double()

    b, c, s = args.batch, args.channels, args.size
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    x0 = torch.rand(b, c, s, s, dtype=torch.float64) * 2 - 1
    t = torch.randint(1, 1000, (b,))
    eps = torch.randn(b, c, s, s, dtype=torch.float64).float().double()
    x_t = (abar[t].sqrt()[:, None, None, None] * x0 + (1 - abar[t]).sqrt()[:, None, None, None] * eps).float().double()
    y = torch.randint(0, args.classes, (b,)) if args.classes > 0 else None

    tensors = {name: f32(p) for name, p in model.named_parameters()}
    results = train_step(model, x_t, t, y, eps, ADAMW)
    tensors.update({"x_t": f32(x_t), "t": t.to(torch.int64), "eps": f32(eps)})
    if y is not None:
        tensors["y"] = y.to(torch.int64)
    tensors.update({k: f32(v) for k, v in results.items()})
    meta = {"format": "ddpm-reference", "version": "1", "image_size": str(s), "in_channels": str(c),
            "out_channels": str(c), "base_channels": str(args.base), "time_dim": str(args.time_dim),
            "num_classes": str(args.classes), "heads": str(args.heads)}
    meta.update({"adamw_" + k: repr(v) for k, v in ADAMW.items()})
    save_file(tensors, args.output, metadata=meta)
    print(f"{args.output}: {len(tensors)} tensors, loss {results['loss'].item():.6f}")
    if not float32_headroom(args.output):
        raise SystemExit(f"{args.output}: too ill-conditioned for a float32 check (try a larger --base)")


def rerun(path, dtype, steps):
    """Loads a reference file's weights and inputs into this twin, runs the step in `dtype` and
    returns the relative error ||ours - ref|| / ||ref|| of every result; with `steps`, of the
    AdamW results as steps from the file's weights (as the engine compares them)."""
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        ten = {k: f.get_tensor(k) for k in f.keys()}
    ints = {k: int(meta[k]) for k in ("in_channels", "out_channels", "base_channels", "time_dim", "num_classes", "heads")}
    model = UNet(ints["in_channels"], ints["out_channels"], ints["base_channels"], ints["time_dim"],
                 ints["num_classes"], ints["heads"]).to(dtype)
    model.load_state_dict({k: ten[k].to(dtype) for k, _ in model.named_parameters()})
    adamw = {k: float(meta["adamw_" + k]) for k in ADAMW}
    # In float32 the AdamW step starts from the file's gradients, as the engine's check does
    # (model/reference.hpp): Adam turns rounding noise on an exactly-zero gradient into a full step.
    grads = {k: ten["grad." + k].to(dtype) for k, _ in model.named_parameters()} if dtype == torch.float32 else None
    out = train_step(model, ten["x_t"].to(dtype), ten["t"], ten.get("y"), ten["eps"].to(dtype), adamw, grads)
    errs = {}
    for k, v in out.items():
        base = ten[k[len("adamw."):]].double() if steps and k.startswith("adamw.") else 0
        ref = ten[k].double() - base
        errs[k] = ((v.double() - base - ref).norm() / ref.norm().clamp_min(1e-12)).item()
    return errs


def verify(path):
    """float64 re-run: validates this twin against a file written by someone else (~1e-6 expected)."""
    errs = rerun(path, torch.float64, steps=False)
    for k, e in errs.items():
        if e > 1e-6:
            print(f"{k}: relative error {e:.3e}")
    worst = max(errs.values())
    print(f"{path}: {len(errs)} results compared, worst relative error {worst:.3e}")
    return worst


def float32_headroom(path):
    """float32 re-run: a file is only a fair test if float32 PyTorch passes it with 2x to spare
    (the engine's tolerances: eps_pred and loss 1e-4, gradients and AdamW 1e-3). Tiny widths fail
    this: LayerNorm over 2 channels is ill-conditioned."""
    errs = rerun(path, torch.float32, steps=True)
    tol = {k: 1e-4 if k in ("eps_pred", "loss") else 1e-3 for k in errs}
    worst = max(errs, key=lambda k: errs[k] / tol[k])
    print(f"{path}: float32 PyTorch worst {worst} {errs[worst]:.2e} (tolerance {tol[worst]:.0e})")
    return errs[worst] <= tol[worst] / 2


def dump_keys(path):
    model = UNet()
    count = sum(p.numel() for p in model.parameters())
    with open(path, "w") as f:
        f.write(f"# state_dict of the seed U-Net (c 3, b 64, time_dim 256, 10 classes): {count} parameters\n")
        for name, p in model.named_parameters():
            f.write(name + " " + " ".join(str(d) for d in p.shape) + "\n")
    uncond = count - model.label_emb.weight.numel()
    print(f"{path}: {count} parameters ({uncond} unconditional)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=16, help="image side, a multiple of 8")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--base", type=int, default=4, help="base_channels b, a multiple of --heads")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (the seed has 4)")
    ap.add_argument("--time-dim", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10, help="0 = unconditional")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output")
    ap.add_argument("--verify", metavar="FILE")
    ap.add_argument("--dump-keys", metavar="FILE")
    args = ap.parse_args()
    if args.verify:
        ok = verify(args.verify) < 1e-5
        float32_headroom(args.verify)
        raise SystemExit(0 if ok else 1)
    if args.dump_keys:
        dump_keys(args.dump_keys)
    if args.output:
        assert args.size % 8 == 0 and args.time_dim % 2 == 0 and args.base % args.heads == 0
        generate(args)


if __name__ == "__main__":
    main()
