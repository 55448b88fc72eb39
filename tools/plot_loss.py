#!/usr/bin/env python3
"""Draws training-loss curves from `ddpm train` loss logs (step,loss CSV) as an SVG picture.

    tools/plot_loss.py [--smooth N] [--title TEXT] --out loss.svg LABEL=run/loss.csv [LABEL=...]

Each curve is the moving average over N steps (default 50; the raw per-step loss of a diffusion
model is noisy because every step draws new timesteps). Steps run along x, the loss along a log
scale on y. Standard library only: SVG is text, and GitHub shows it inline in the docs.
"""
import argparse
import csv
import math

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 360, 60, 20, 30, 40


def read(path):
    with open(path) as f:
        rows = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    if not rows:
        raise SystemExit(f"plot_loss: {path} has no rows")
    return rows


def smooth(rows, n):
    out, acc = [], 0.0
    for i, (step, loss) in enumerate(rows):
        acc += loss
        if i >= n:
            acc -= rows[i - n][1]
        out.append((step, acc / min(i + 1, n)))
    return out


def nice_ticks(lo, hi):
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    return [t for t in ticks if lo <= t <= hi]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("curves", nargs="+", help="LABEL=path/to/loss.csv")
    ap.add_argument("--smooth", type=int, default=50)
    ap.add_argument("--title", default="training loss")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    curves = []
    for spec in a.curves:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"plot_loss: '{spec}' is not LABEL=path")
        curves.append((label, smooth(read(path), max(1, a.smooth))))
    steps = [s for _, c in curves for s, _ in c]
    losses = [v for _, c in curves for _, v in c if v > 0]
    x0, x1 = min(steps), max(steps)
    y0, y1 = math.log10(min(losses)), math.log10(max(losses))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    px = lambda s: LEFT + (s - x0) / (x1 - x0) * (W - LEFT - RIGHT)
    py = lambda v: TOP + (y1 - math.log10(v)) / (y1 - y0) * (H - TOP - BOTTOM)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{a.title} '
           f'(moving average over {a.smooth} steps)</text>']
    for t in nice_ticks(10**y0, 10**y1):
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i in range(6):
        s = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{px(s):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{s:.0f}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle">step</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" '
               'stroke="#444"/>')
    for k, (label, c) in enumerate(curves):
        colour = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in c if v > 0)
        dash = ' stroke-dasharray="6,4"' if k % 2 else ""  # curves that coincide stay visible
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
        y = TOP + 16 + 16 * k
        out.append(f'<line x1="{W - RIGHT - 150}" x2="{W - RIGHT - 130}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - RIGHT - 124}" y="{y}">{label} (last {c[-1][1]:.4f})</text>')
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
