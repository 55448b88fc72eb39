"""The seed U-Net in PyTorch (../shared/docs/seed-model.md), with the reference's parameter names.

Written from the seed-model contract, not copied from the reference repository. Used by
tools/make_reference.py (reference files) and benchmarks/torch_twin.py (PyTorch's speed).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None, residual=False):
        super().__init__()
        mid = mid or cout
        self.residual = residual
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.GroupNorm(1, mid), nn.GELU(),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.GroupNorm(1, cout))

    def forward(self, x):
        h = self.double_conv(x)
        return F.gelu(x + h) if self.residual else h


def emb_layer(time_dim, cout):
    return nn.Sequential(nn.SiLU(), nn.Linear(time_dim, cout))


class Down(nn.Module):
    def __init__(self, cin, cout, time_dim):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout))
        self.emb_layer = emb_layer(time_dim, cout)

    def forward(self, x, e):
        return self.maxpool_conv(x) + self.emb_layer(e)[:, :, None, None]


class Up(nn.Module):
    def __init__(self, cin, cout, time_dim):
        super().__init__()
        self.conv = nn.Sequential(DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout, cin // 2))
        self.emb_layer = emb_layer(time_dim, cout)

    def forward(self, x, skip, e):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = self.conv(torch.cat([skip, x], dim=1))
        return x + self.emb_layer(e)[:, :, None, None]


class SelfAttention(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.mha = nn.MultiheadAttention(c, heads, batch_first=True)
        self.ln = nn.LayerNorm(c)
        self.ff_self = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.GELU(), nn.Linear(c, c))

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = x.reshape(n, c, h * w).transpose(1, 2)  # token h*W + w
        x_ln = self.ln(tokens)
        a = self.mha(x_ln, x_ln, x_ln, need_weights=False)[0] + tokens
        a = self.ff_self(a) + a
        return a.transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    def __init__(self, cin=3, cout=3, b=64, time_dim=256, num_classes=10, heads=4):
        super().__init__()
        self.time_dim = time_dim
        self.inc = DoubleConv(cin, b)
        self.down1, self.sa1 = Down(b, 2 * b, time_dim), SelfAttention(2 * b, heads)
        self.down2, self.sa2 = Down(2 * b, 4 * b, time_dim), SelfAttention(4 * b, heads)
        self.down3, self.sa3 = Down(4 * b, 4 * b, time_dim), SelfAttention(4 * b, heads)
        self.bot1, self.bot2, self.bot3 = DoubleConv(4 * b, 8 * b), DoubleConv(8 * b, 8 * b), DoubleConv(8 * b, 4 * b)
        self.up1, self.sa4 = Up(8 * b, 2 * b, time_dim), SelfAttention(2 * b, heads)
        self.up2, self.sa5 = Up(4 * b, b, time_dim), SelfAttention(b, heads)
        self.up3, self.sa6 = Up(2 * b, b, time_dim), SelfAttention(b, heads)
        self.outc = nn.Conv2d(b, cout, 1)
        if num_classes > 0:
            self.label_emb = nn.Embedding(num_classes, time_dim)

    def embed(self, t, y):
        half = self.time_dim // 2
        f = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64, device=t.device) * 2 / self.time_dim)
        arg = t.to(torch.float64)[:, None] * f[None, :]
        e = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(self.outc.weight.dtype)
        return e + self.label_emb(y) if y is not None else e

    def forward(self, x, t, y=None):
        e = self.embed(t, y)
        x1 = self.inc(x)
        x2 = self.sa1(self.down1(x1, e))
        x3 = self.sa2(self.down2(x2, e))
        x4 = self.sa3(self.down3(x3, e))
        x4 = self.bot3(self.bot2(self.bot1(x4)))
        h = self.sa4(self.up1(x4, x3, e))
        h = self.sa5(self.up2(h, x2, e))
        h = self.sa6(self.up3(h, x1, e))
        return self.outc(h)
