"""Small building blocks shared by irx's own architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a BCHW tensor (per pixel, like Restormer/NAFNet).

    Statistics are taken in fp32 whatever the input dtype, because fp16/bf16 variance of
    wide feature maps loses too many bits.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        mu = xf.mean(1, keepdim=True)
        var = (xf - mu).pow(2).mean(1, keepdim=True)
        y = (xf - mu) * torch.rsqrt(var + self.eps)
        y = y * self.weight.float()[:, None, None] + self.bias.float()[:, None, None]
        return y.to(dtype)


class GatedConvFFN(nn.Module):
    """Convolutional gated feed-forward: 1x1 expand -> 3x3 depthwise -> GELU gate -> 1x1 back."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(dim, hidden * 2, 1)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2)
        self.project = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(a) * b)


def pad_bottom_right(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad the bottom/right of a BCHW tensor to (height, width), both at least its own size.

    Reflect padding where the image is large enough (it hides the seam best), replicate
    otherwise (reflect needs pad < size, which fails for 1-3 px inputs).
    """
    h, w = x.shape[-2:]
    ph, pw = height - h, width - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad the bottom/right of a BCHW tensor so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original (H, W) so the caller can crop back.
    """
    h, w = x.shape[-2:]
    return pad_bottom_right(x, h + (-h) % multiple, w + (-w) % multiple), h, w


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
