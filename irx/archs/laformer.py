"""LAformer: Rank Enhanced Linear Attention (RELA) for image restoration, irx's own design.

The seed paper (arXiv 2505.16157) describes LAformer only at abstract level: linear attention
whose low-rank output is enriched by a depthwise convolution (RELA), channel attention for
global perception, a convolutional gated FFN for local fitting, no softmax and no windows.
The official layout and weights could not be read here, so this module is irx's own reading
(see docs/architectures.md); it is NOT weight-compatible with the official checkpoints.

Block (pre-norm, two residual branches, no softmax anywhere)::

    z = RELA(LN(x))                      # O(H*W*C^2/heads), never an (HW x HW) tensor
    x = x + proj(z * CA(z))              # CA: simplified channel attention (pool -> 1x1)
    x = x + GatedConvFFN(LN(x))          # 1x1 expand -> 3x3 DW -> GELU gate -> 1x1

RELA, per head with phi(t) = ELU(t) + 1 > 0 and tokens n = 1..N::

    out_n = phi(q_n)^T (mean_i phi(k_i) v_i^T) / (phi(q_n)^T mean_i phi(k_i) + eps) + DWConv5x5(V)_n

The query is scaled by a learned per-head temperature (shape (heads, 1, 1)) before phi; it
sharpens or flattens the kernel per head and, as a side effect, lets the loader read the head
count from the state dict. The kernel sums are taken as means and computed in fp32 with
autocast disabled, so the normaliser neither overflows in fp16 nor loses bits in bf16.
``rank_enhance=False`` drops the DWConv(V) branch (plain linear attention, for the ablation);
the loader detects it from the missing ``rela.rank_conv`` keys.

Channel attention: NAFNet-style simplified channel attention (global average pool -> 1x1 conv
-> multiply). It is linear in the pooled statistics, needs no softmax or sigmoid, and costs
C^2 parameters per block; a transposed (C x C) attention would need a softmax or another
normaliser and roughly doubles the mixer cost.

Two layouts, chosen by scale:

- scale 1 (denoise, deblur, derain, dehaze, dejpeg, lowlight): ``LAformerUNet``, a
  Restormer-like 4-level U-Net. Downsampling is 3x3 conv (C -> C/2) + PixelUnshuffle(2),
  upsampling 3x3 conv (C -> 2C) + PixelShuffle(2), skips are concatenated then reduced by a
  1x1 conv, a few refinement blocks run at full resolution, and the image is added back at
  the end (global residual). The U-Net gives a large receptive field cheaply and puts most
  parameters at low resolution, where they cost little time.
- scale 2/3/4 (upscale): ``LAformerSR``, a flat SwinIR-like body at LR resolution: groups of
  blocks each closed by a 3x3 conv with a residual, a conv after the body with a long
  residual, then a 3x3 conv to in_chans*scale^2 + PixelShuffle, added to a bilinear upsample
  of the input. SR detail is lost by downsampling, so the body stays at LR resolution.

Inputs of any size >= 1x1 work: the U-Net pads (reflect, or replicate for tiny inputs) to a
multiple of 2^(levels-1) and crops back; the SR layout needs no padding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from spandrel import Architecture, ImageModelDescriptor, ModelTiling
from spandrel.util import get_seq_len
from torch import nn

from irx.archs.common import GatedConvFFN, LayerNorm2d, count_params, pad_to_multiple
from irx.errors import ModelError

_EPS = 1e-6


def _phi(t: torch.Tensor) -> torch.Tensor:
    """Non-negative kernel feature map (strictly positive, so the normaliser is > 0)."""
    return F.elu(t) + 1.0


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Normalised kernel linear attention on (B, heads, d, N) tensors, already feature-mapped.

    out[:, :, :, n] = sum_i (q_n . k_i) v_i / sum_i (q_n . k_i). Cost O(N d^2); the largest
    intermediate is (B, heads, d, d). Means instead of sums keep the magnitudes O(1).
    """
    n = q.shape[-1]
    kv = torch.matmul(k, v.transpose(-1, -2)) / n  # (B, h, d_k, d_v)
    num = torch.matmul(kv.transpose(-1, -2), q)  # (B, h, d_v, N)
    den = (k.mean(dim=-1, keepdim=True) * q).sum(dim=-2, keepdim=True)  # (B, h, 1, N)
    return num / (den + _EPS)


class RELA(nn.Module):
    """Rank Enhanced Linear Attention: linear attention + depthwise conv of V, then the rest of
    the mixer (channel attention and 1x1 output projection)."""

    def __init__(self, dim: int, heads: int, rank_enhance: bool = True, rank_kernel: int = 5) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.rank_conv = (
            nn.Conv2d(dim, dim, rank_kernel, padding=rank_kernel // 2, groups=dim) if rank_enhance else None
        )
        self.ca = nn.Conv2d(dim, dim, 1)  # simplified channel attention on the pooled features
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x)
        v_img = qkv[:, 2 * c :]
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # fp32 island: the kernel sums and the division are where low precision fails.
        with torch.autocast(device_type=x.device.type, enabled=False):
            qf = _phi(q.float() * self.temperature.float())
            kf = _phi(k.float())
            out = linear_attention(qf, kf, v.float())
        z = out.reshape(b, c, h, w).to(v_img.dtype)
        if self.rank_conv is not None:
            z = z + self.rank_conv(v_img)  # restores the rank the linear map lacks
        z = z * self.ca(z.mean(dim=(2, 3), keepdim=True))
        return self.proj(z)


class LAformerBlock(nn.Module):
    """Pre-norm block: RELA mixer, then convolutional gated FFN."""

    def __init__(
        self, dim: int, heads: int, ffn_hidden: int, rank_enhance: bool = True, rank_kernel: int = 5
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.rela = RELA(dim, heads, rank_enhance, rank_kernel)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedConvFFN(dim, ffn_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.rela(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(n: int, dim: int, heads: int, hidden: int, rank_enhance: bool, rank_kernel: int) -> nn.Sequential:
    return nn.Sequential(*[LAformerBlock(dim, heads, hidden, rank_enhance, rank_kernel) for _ in range(n)])


class LAformerUNet(nn.Module):
    """Scale-1 LAformer: multi-level U-Net of LAformer blocks with a global image residual.

    ``depths[i]`` blocks run at level i in the encoder and again in the decoder; the last
    entry is the bottleneck. Level i has ``dim * 2**i`` channels and ``heads[i]`` heads.
    """

    def __init__(
        self,
        in_chans: int = 3,
        dim: int = 16,
        depths: Sequence[int] = (1, 1, 1, 1),
        heads: Sequence[int] = (1, 1, 2, 4),
        refine_depth: int = 1,
        ffn_expansion: float = 2.0,
        rank_enhance: bool = True,
        rank_kernel: int = 5,
    ) -> None:
        super().__init__()
        if len(depths) != len(heads) or len(depths) < 1:
            raise ValueError("depths and heads need one entry per level")
        if depths[-1] < 1:
            raise ValueError("the bottleneck (last level) needs at least one block")
        if len(depths) > 1 and dim % 2:
            raise ValueError("dim must be even for a multi-level U-Net")
        self.in_chans = in_chans
        self.scale = 1
        self.levels = len(depths)
        self.rank_enhance = rank_enhance
        self.hparams: dict[str, Any] = dict(
            in_chans=in_chans, dim=dim, depths=list(depths), heads=list(heads), refine_depth=refine_depth,
            ffn_expansion=ffn_expansion, rank_enhance=rank_enhance, rank_kernel=rank_kernel,
        )  # fmt: skip
        chans = [dim * 2**i for i in range(self.levels)]
        # FFN width doubles with the level, from one rounded base width, so the loader can
        # recover ffn_expansion exactly from any level.
        hidden0 = max(1, round(dim * ffn_expansion))

        def stage(level: int, n: int) -> nn.Sequential:
            return _stage(n, chans[level], heads[level], hidden0 * 2**level, rank_enhance, rank_kernel)

        self.embed = nn.Conv2d(in_chans, dim, 3, padding=1)
        self.encoders = nn.ModuleList([stage(i, depths[i]) for i in range(self.levels - 1)])
        self.downs = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)) for c in chans[:-1]]
        )
        self.latent = stage(self.levels - 1, depths[-1])
        self.ups = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c * 2, c * 4, 3, padding=1, bias=False), nn.PixelShuffle(2)) for c in chans[:-1]]
        )
        self.reduces = nn.ModuleList([nn.Conv2d(c * 2, c, 1, bias=False) for c in chans[:-1]])
        self.decoders = nn.ModuleList([stage(i, depths[i]) for i in range(self.levels - 1)])
        self.refine = stage(0, refine_depth)
        self.head = nn.Conv2d(dim, in_chans, 3, padding=1)

    @property
    def pad_multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, h, w = pad_to_multiple(x, self.pad_multiple)
        feat = self.embed(xp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.latent(feat)
        for i in reversed(range(self.levels - 1)):
            feat = self.ups[i](feat)
            feat = self.reduces[i](torch.cat([feat, skips[i]], dim=1))
            feat = self.decoders[i](feat)
        feat = self.refine(feat)
        return (self.head(feat) + xp)[..., :h, :w]


class _Group(nn.Module):
    """SR body group: blocks then a 3x3 conv, with a residual around the group."""

    def __init__(self, blocks: nn.Sequential, dim: int) -> None:
        super().__init__()
        self.blocks = blocks
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.blocks(x))


class LAformerSR(nn.Module):
    """Scale 2/3/4 LAformer: flat body at LR resolution, pixel-shuffle head, bilinear image residual.

    ``group_depths[g]`` blocks in group g; all blocks share ``dim`` and ``heads``.
    """

    def __init__(
        self,
        in_chans: int = 3,
        scale: int = 2,
        dim: int = 32,
        group_depths: Sequence[int] = (2, 2),
        heads: int = 2,
        ffn_expansion: float = 2.0,
        rank_enhance: bool = True,
        rank_kernel: int = 5,
    ) -> None:
        super().__init__()
        if scale < 2:
            raise ValueError("LAformerSR needs scale >= 2; use LAformerUNet for scale 1")
        if sum(group_depths) < 1:
            raise ValueError("LAformerSR needs at least one block")
        self.in_chans = in_chans
        self.scale = scale
        self.rank_enhance = rank_enhance
        self.hparams: dict[str, Any] = dict(
            in_chans=in_chans, scale=scale, dim=dim, group_depths=list(group_depths), heads=heads,
            ffn_expansion=ffn_expansion, rank_enhance=rank_enhance, rank_kernel=rank_kernel,
        )  # fmt: skip
        hidden = max(1, round(dim * ffn_expansion))
        self.embed = nn.Conv2d(in_chans, dim, 3, padding=1)
        self.groups = nn.ModuleList(
            [_Group(_stage(n, dim, heads, hidden, rank_enhance, rank_kernel), dim) for n in group_depths]
        )
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(dim, in_chans * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.embed(x)
        body = feat
        for group in self.groups:
            body = group(body)
        feat = feat + self.conv_after_body(body)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.upsample(feat) + base


LAformer = LAformerUNet | LAformerSR

# Named variants. Scale-1 entries configure LAformerUNet, "sr" entries LAformerSR.
LAFORMER_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        # No blocks at full resolution: the stem, skip and head run there, blocks start at 1/2.
        # This halves the training step on CPU (depthwise-conv backward dominates there).
        "unet": dict(dim=16, depths=(0, 1, 2), heads=(1, 2, 4), refine_depth=0, ffn_expansion=2.0),
        "sr": dict(dim=32, group_depths=(2, 2, 2), heads=2, ffn_expansion=2.0),
    },
    "small": {
        # Like tiny, no blocks at full resolution: 3.4M parameters at a quarter of the CPU time that
        # depths (2, 2, 3, 4) + 2 refinement blocks take (2.6 s vs 10.6 s for 768x512 on 2 cores).
        "unet": dict(dim=24, depths=(0, 2, 3, 4), heads=(1, 2, 4, 8), refine_depth=0, ffn_expansion=2.0),
        "sr": dict(dim=96, group_depths=(4, 4, 4, 4), heads=4, ffn_expansion=2.0),
    },
    "base": {
        "unet": dict(dim=48, depths=(4, 6, 6, 8), heads=(1, 2, 4, 8), refine_depth=4, ffn_expansion=2.66),
        "sr": dict(dim=240, group_depths=(6, 6, 6, 6, 6, 6), heads=8, ffn_expansion=2.0),
    },
}


def build_laformer(variant: str = "tiny", scale: int = 1, in_chans: int = 3, **overrides: Any) -> LAformer:
    """Build a named LAformer variant; ``overrides`` replace any constructor argument."""
    if variant not in LAFORMER_VARIANTS:
        raise ModelError(f"unknown LAformer variant {variant!r}; choose one of {sorted(LAFORMER_VARIANTS)}")
    if scale == 1:
        return LAformerUNet(in_chans=in_chans, **{**LAFORMER_VARIANTS[variant]["unet"], **overrides})
    return LAformerSR(in_chans=in_chans, scale=scale, **{**LAFORMER_VARIANTS[variant]["sr"], **overrides})


def _has(sd: Mapping[str, object], *keys: str) -> bool:
    return all(k in sd for k in keys)


def _block_keys(prefix: str) -> tuple[str, ...]:
    return tuple(
        prefix + k
        for k in ("norm1.weight", "rela.temperature", "rela.qkv.weight", "rela.ca.weight", "rela.proj.weight",
                  "norm2.weight", "ffn.expand.weight", "ffn.dwconv.weight", "ffn.project.weight")
    )  # fmt: skip


def detect_laformer(state_dict: Mapping[str, object]) -> bool:
    """True for state dicts of LAformerUNet or LAformerSR (key names only)."""
    if "embed.weight" not in state_dict:
        return False
    unet = _has(state_dict, "head.weight", *_block_keys("latent.0."))
    if unet:
        return True
    if not _has(state_dict, "conv_after_body.weight", "upsample.0.weight", "groups.0.conv.weight"):
        return False
    # SR groups may be empty; the first non-empty one must hold a complete block.
    n_groups = get_seq_len(state_dict, "groups")
    return any(_has(state_dict, *_block_keys(f"groups.{g}.blocks.0.")) for g in range(n_groups))


def _first_block(state_dict: Mapping[str, Any], stages: Sequence[str]) -> str:
    """Prefix of the first block found among ``stages`` (each a Sequential of blocks)."""
    for stage in stages:
        if f"{stage}.0.rela.temperature" in state_dict:
            return f"{stage}.0."
    raise KeyError("no LAformer block found")


def load_laformer(state_dict: Mapping[str, Any]) -> LAformer:
    """Build the LAformer a state dict describes (every hyper-parameter inferred) and load it."""
    sd = state_dict
    in_chans, dim = int(sd["embed.weight"].shape[1]), int(sd["embed.weight"].shape[0])
    rank_keys = [k for k in sd if k.endswith(".rela.rank_conv.weight")]
    rank_enhance = bool(rank_keys)
    rank_kernel = int(sd[rank_keys[0]].shape[-1]) if rank_keys else 5
    model: LAformer
    if "head.weight" in sd:
        levels = get_seq_len(sd, "reduces") + 1
        depths = [get_seq_len(sd, f"encoders.{i}") for i in range(levels - 1)] + [get_seq_len(sd, "latent")]
        stages = [f"encoders.{i}" for i in range(levels - 1)] + ["latent"]
        heads = [int(sd[f"{s}.0.rela.temperature"].shape[0]) if n > 0 else 1 for s, n in zip(stages, depths)]
        first = next(i for i, n in enumerate(depths) if n > 0)
        hidden0 = int(sd[f"{stages[first]}.0.ffn.project.weight"].shape[1]) // 2**first
        model = LAformerUNet(
            in_chans=in_chans, dim=dim, depths=depths, heads=heads, refine_depth=get_seq_len(sd, "refine"),
            ffn_expansion=hidden0 / dim, rank_enhance=rank_enhance, rank_kernel=rank_kernel,
        )  # fmt: skip
    else:
        n_groups = get_seq_len(sd, "groups")
        group_depths = [get_seq_len(sd, f"groups.{g}.blocks") for g in range(n_groups)]
        block = _first_block(sd, [f"groups.{g}.blocks" for g in range(n_groups)])
        scale = math.isqrt(int(sd["upsample.0.weight"].shape[0]) // in_chans)
        model = LAformerSR(
            in_chans=in_chans, scale=scale, dim=dim, group_depths=group_depths,
            heads=int(sd[block + "rela.temperature"].shape[0]),
            ffn_expansion=int(sd[block + "ffn.project.weight"].shape[1]) / dim,
            rank_enhance=rank_enhance, rank_kernel=rank_kernel,
        )  # fmt: skip
    model.load_state_dict(sd)  # strict: a mismatch means the inference above is wrong
    return model


class LAformerArch(Architecture[nn.Module]):
    """spandrel architecture for irx's LAformer (both layouts)."""

    def __init__(self) -> None:
        super().__init__(id="LAformer", name="LAformer", detect=detect_laformer)

    def load(self, state_dict: Mapping[str, Any]) -> ImageModelDescriptor[nn.Module]:  # type: ignore[override]
        model = load_laformer(state_dict)
        hp = model.hparams
        tags = [f"{hp['dim']}nf", "RELA" if hp["rank_enhance"] else "plain-linear-attention"]
        return ImageModelDescriptor(
            model,
            dict(state_dict),
            architecture=self,
            purpose="SR" if model.scale > 1 else "Restoration",
            tags=tags,
            supports_half=True,  # checked on CPU in tests/test_laformer.py (fp32 attention island)
            supports_bfloat16=True,
            scale=model.scale,
            input_channels=model.in_chans,
            output_channels=model.in_chans,
            size_requirements=None,  # the U-Net pads internally; the SR body takes any size
            tiling=ModelTiling.SUPPORTED,
        )


__all__ = [
    "LAFORMER_VARIANTS",
    "LAformer",
    "LAformerArch",
    "LAformerBlock",
    "LAformerSR",
    "LAformerUNet",
    "RELA",
    "build_laformer",
    "count_params",
    "detect_laformer",
    "linear_attention",
    "load_laformer",
]
