"""RWKV-IR (arXiv 2412.03814), the authors' released ``RWKVIRv4`` design, in pure PyTorch.

The parameter layout (names, shapes, counts) is exactly that of the authors' release, so a
checkpoint in that layout loads with ``strict=True`` (see tests/data/rwkvir_state_dict.txt).
No official weights exist; what the layout leaves open is chosen here and listed below.

Skeleton (SwinIR-like, all at input resolution)::

    x = (img - rgb_mean) * img_range
    f = conv_first(x)                                      # 3x3, in_chans -> C
    t = patch_embed.norm(tokens(f))                        # LayerNorm
    for group in layers:  t = t + tokens(group.conv(image(group.blocks(t))))
    f = conv_after_body(image(norm(t))) + f
    head: SR      conv_before_upsample(3x3 + LeakyReLU) -> upsample (conv + PixelShuffle)* -> conv_last
          direct  upsample = conv 3x3 to out*s^2 + PixelShuffle       (lightweight SR)
          1x      x + conv_last(f)                                     (image residual)
    out = head / img_range + rgb_mean   (clamped to [0, 1] in eval mode only)

Block (``layers.g.residual_group.blocks.b.RWKV``)::

    if group 0: x = ln0(x)                   # release: ln0 exists iff layer_id == 0, and the
                                             # group index is passed as layer_id to every block
    x = gamma1 * x + SpatialMix(ln1(x))
    x = gamma2 * x + ChannelMix(ln2(x))

SpatialMix: ``s = DCShift(x)``, ``x = x + conv_scale * s``, optional Q-shift token mixing
(``shift_pixel > 0``: ``x_k = x*mix_k + qshift(x)*(1-mix_k)``, same for v and r), bias-free
K, V, R, then Cross-Bi-WKV = Bi-WKV over the row-major scan (``spatial_decay``,
``spatial_first``) + Bi-WKV over the column-major scan (``spatial_decay_2``,
``spatial_second``), and ``output(sigmoid(R) * wkv + conv_scale * s)``.
DC-Shift follows the paper's text: 1x1 conv -> InstanceNorm -> GELU (``conv1a3``), 3x3
depthwise -> GELU (``conv33``), 1x1 conv -> InstanceNorm (``conv1b3``); InstanceNorm has no
affine parameters, consistent with the release's keys.
ChannelMix: ``m = a0 x + a1 DW1x1(x) + a2 DW3x3(x) + a3 DW5x5(x)``,
``out = sigmoid(receptance(m)) * value(relu(key(m))^2)``.

Choices where the layout is silent (documented, ours): conv_scale's double use (added to the
K/V/R input and to the gated WKV output) and the interleaved-channel Q-shift follow code from
the same authors' repository; the DC-Shift activations follow the paper; ``alpha`` starts at
(1, 0.5, 0.5, 0.5) instead of random; output clamping only in eval mode, so training losses
keep their gradient outside [0, 1].

``wkv_norm_tokens`` (None = tokens of the current feature map) fixes the N in
``w = decay / N``: set it to the training patch's token count to make tiles and whole images
use the same decay per pixel (see irx/archs/bi_wkv.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as torch_checkpoint
from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements, StateDict
from spandrel.util import KeyCondition, get_pixelshuffle_params, get_seq_len
from torch import nn

from irx.archs.bi_wkv import bi_wkv
from irx.errors import UsageError

RGB_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("", "pixelshuffle", "pixelshuffledirect")


def _to_image(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W)."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, hw[0], hw[1])


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) tokens, row-major."""
    return x.flatten(2).transpose(1, 2)


def q_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Vision-RWKV Q-shift on (B, C, H, W): channels 0, 4, 8, ... move right by ``shift``,
    1, 5, ... left, 2, 6, ... down, 3, 7, ... up; vacated pixels are 0."""
    _, _, h, w = x.shape
    out = torch.zeros_like(x)
    sw, sh = min(shift, w), min(shift, h)
    out[:, 0::4, :, sw:] = x[:, 0::4, :, : w - sw]
    out[:, 1::4, :, : w - sw] = x[:, 1::4, :, sw:]
    out[:, 2::4, sh:, :] = x[:, 2::4, : h - sh, :]
    out[:, 3::4, : h - sh, :] = x[:, 3::4, sh:, :]
    return out


def cross_bi_wkv(
    k: torch.Tensor,
    v: torch.Tensor,
    hw: tuple[int, int],
    decays: tuple[torch.Tensor, torch.Tensor],
    firsts: tuple[torch.Tensor, torch.Tensor],
    norm_tokens: int | None,
) -> torch.Tensor:
    """Bi-WKV along the row-major scan plus Bi-WKV along the column-major scan, (B, T, C)."""
    b, t, c = k.shape
    h, w = hw
    rows = bi_wkv(k, v, decays[0], firsts[0], norm_tokens)

    def transpose(x: torch.Tensor) -> torch.Tensor:  # row-major <-> column-major token order
        return x.reshape(b, h, w, c).transpose(1, 2).reshape(b, t, c)

    cols = bi_wkv(transpose(k), transpose(v), decays[1], firsts[1], norm_tokens)
    return rows + cols.reshape(b, w, h, c).transpose(1, 2).reshape(b, t, c)


class SpatialMix(nn.Module):
    """DC-Shift + (optional Q-shift) + Cross-Bi-WKV attention, the release's ``att`` module."""

    def __init__(self, dim: int, layer_id: int, n_layers: int, shift_pixel: int) -> None:
        super().__init__()
        self.shift_pixel = shift_pixel
        # Vision-RWKV "fancy" initialisation, the same for both scans.
        ratio_0_to_1 = layer_id / (n_layers - 1) if n_layers > 1 else 0.0
        ratio_1_to_0 = 1.0 - layer_id / n_layers
        h = torch.arange(dim, dtype=torch.float32)
        decay = -5 + 8 * (h / max(dim - 1, 1)) ** (0.7 + 1.3 * ratio_0_to_1)
        zigzag = ((h.long() + 1) % 3 - 1).float() * 0.5
        first = torch.full((dim,), math.log(0.3)) + zigzag
        self.spatial_decay = nn.Parameter(decay.clone())
        self.spatial_decay_2 = nn.Parameter(decay.clone())
        self.spatial_first = nn.Parameter(first.clone())
        self.spatial_second = nn.Parameter(first.clone())
        if shift_pixel > 0:
            ramp = (h / dim).view(1, 1, dim)
            self.spatial_mix_k = nn.Parameter(ramp**ratio_1_to_0)
            self.spatial_mix_v = nn.Parameter(ramp**ratio_1_to_0 + 0.3 * ratio_0_to_1)
            self.spatial_mix_r = nn.Parameter(ramp ** (0.5 * ratio_1_to_0))
        self.conv_scale = nn.Parameter(torch.ones(dim))
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)
        # DC-Shift, applied as conv1b3(conv33(conv1a3(x))).
        self.conv1b3 = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.InstanceNorm2d(dim))
        self.conv1a3 = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.InstanceNorm2d(dim), nn.GELU())
        self.conv33 = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False), nn.GELU())

    def forward(self, x: torch.Tensor, hw: tuple[int, int], norm_tokens: int | None) -> torch.Tensor:
        img = _to_image(x, hw)
        dc = _to_tokens(self.conv1b3(self.conv33(self.conv1a3(img)))) * self.conv_scale
        x = x + dc
        if self.shift_pixel > 0:
            xx = _to_tokens(q_shift(_to_image(x, hw), self.shift_pixel))
            xk = torch.lerp(xx, x, self.spatial_mix_k)
            xv = torch.lerp(xx, x, self.spatial_mix_v)
            xr = torch.lerp(xx, x, self.spatial_mix_r)
        else:
            xk = xv = xr = x
        k = self.key(xk)
        v = self.value(xv)
        sr = torch.sigmoid(self.receptance(xr))
        wkv = cross_bi_wkv(
            k, v, hw, (self.spatial_decay, self.spatial_decay_2), (self.spatial_first, self.spatial_second), norm_tokens
        )
        return self.output(sr * wkv.to(sr.dtype) + dc)


class ChannelMix(nn.Module):
    """Multi-scale depthwise mixing, then a squared-ReLU FFN gated by sigmoid(receptance)."""

    def __init__(self, dim: int, hidden_rate: int) -> None:
        super().__init__()
        hidden = hidden_rate * dim
        self.alpha = nn.Parameter(torch.tensor([1.0, 0.5, 0.5, 0.5]))
        self.key = nn.Linear(dim, hidden, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(hidden, dim, bias=False)
        self.conv1x1 = nn.Conv2d(dim, dim, 1, groups=dim, bias=False)
        self.conv3x3 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.conv5x5 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        img = _to_image(x, hw)
        a = self.alpha.to(img.dtype)
        m = a[0] * img + a[1] * self.conv1x1(img) + a[2] * self.conv3x3(img) + a[3] * self.conv5x5(img)
        m = _to_tokens(m)
        k = torch.square(torch.relu(self.key(m)))
        return torch.sigmoid(self.receptance(m)) * self.value(k)


class RWKVCore(nn.Module):
    """The release's ``RWKV`` module: pre-norm SpatialMix and ChannelMix with per-channel gains."""

    def __init__(self, dim: int, hidden_rate: int, shift_pixel: int, layer_id: int, n_layers: int) -> None:
        super().__init__()
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.gamma2 = nn.Parameter(torch.ones(dim))
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ln0 = nn.LayerNorm(dim) if layer_id == 0 else None
        self.att = SpatialMix(dim, layer_id, n_layers, shift_pixel)
        self.ffn = ChannelMix(dim, hidden_rate)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], norm_tokens: int | None) -> torch.Tensor:
        if self.ln0 is not None:
            x = self.ln0(x)
        x = self.gamma1 * x + self.att(self.ln1(x), hw, norm_tokens)
        return self.gamma2 * x + self.ffn(self.ln2(x), hw)


class RWKVBlock(nn.Module):
    """Wrapper that gives the release's ``blocks.b.RWKV`` key prefix."""

    def __init__(self, dim: int, hidden_rate: int, shift_pixel: int, layer_id: int, n_layers: int) -> None:
        super().__init__()
        self.RWKV = RWKVCore(dim, hidden_rate, shift_pixel, layer_id, n_layers)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], norm_tokens: int | None) -> torch.Tensor:
        return self.RWKV(x, hw, norm_tokens)


class _BlockList(nn.Module):
    def __init__(self, blocks: list[RWKVBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class ResidualGroup(nn.Module):
    """``layers.g``: blocks, then a 3x3 conv, with a residual around both."""

    def __init__(self, dim: int, depth: int, hidden_rate: int, shift_pixel: int, layer_id: int, n_layers: int) -> None:
        super().__init__()
        blocks = [RWKVBlock(dim, hidden_rate, shift_pixel, layer_id, n_layers) for _ in range(depth)]
        self.residual_group = _BlockList(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(
        self, x: torch.Tensor, hw: tuple[int, int], norm_tokens: int | None, checkpoint: bool = False
    ) -> torch.Tensor:
        y = x
        for blk in self.residual_group.blocks:
            if checkpoint and torch.is_grad_enabled():
                y = torch_checkpoint.checkpoint(blk, y, hw, norm_tokens, use_reentrant=False)
            else:
                y = blk(y, hw, norm_tokens)
        return x + _to_tokens(self.conv(_to_image(y, hw)))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class RWKVIR(nn.Module):
    """RWKV-IR image restoration / super-resolution network (release layout ``RWKVIRv4``).

    Input (B, in_chans, H, W) in [0, 1], any H, W >= 1; output (B, in_chans, H*upscale,
    W*upscale). ``upsampler``: "" (1x, image residual), "pixelshuffle" (classic SR head with
    ``num_feat`` channels, scales 2^n and 3) or "pixelshuffledirect" (one conv + shuffle).
    ``wkv_norm_tokens``: fixed N for ``w = decay / N`` (None: tokens of the input; an attribute,
    so an engine can set it per run). ``use_checkpoint``: recompute each block in backward
    (training memory / ~1.3x time). ``init_weights=False`` skips initialisation (loading).
    """

    def __init__(
        self,
        upscale: int = 1,
        in_chans: int = 3,
        embed_dim: int = 64,
        depths: Sequence[int] = (6, 6, 6, 6),
        hidden_rate: int = 4,
        shift_pixel: int = 1,
        upsampler: str = "",
        img_range: float = 1.0,
        num_feat: int = 64,
        wkv_norm_tokens: int | None = None,
        use_checkpoint: bool = False,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown upsampler {upsampler!r}; choose one of {UPSAMPLERS}")
        if (upscale == 1) != (upsampler == ""):
            raise ValueError(f"upscale {upscale} needs upsampler {'' if upscale == 1 else 'pixelshuffle'!r}")
        if len(depths) < 1 or min(depths) < 1:
            raise ValueError("depths needs at least one group of at least one block")
        self.upscale = upscale
        self.in_chans = in_chans
        self.upsampler = upsampler
        self.img_range = img_range
        self.wkv_norm_tokens = wkv_norm_tokens
        self.use_checkpoint = use_checkpoint
        self.hparams: dict[str, Any] = dict(
            upscale=upscale, in_chans=in_chans, embed_dim=embed_dim, depths=list(depths), hidden_rate=hidden_rate,
            shift_pixel=shift_pixel, upsampler=upsampler, img_range=img_range, num_feat=num_feat,
        )  # fmt: skip
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)  # not in the release's state dict

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchEmbed(embed_dim)
        n = len(depths)
        self.layers = nn.ModuleList(
            [ResidualGroup(embed_dim, d, hidden_rate, shift_pixel, i, n) for i, d in enumerate(depths)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.upsample = _pixelshuffle_upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, in_chans * upscale * upscale, 3, 1, 1), nn.PixelShuffle(upscale)
            )
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        if init_weights:  # the loader skips it: the checkpoint overwrites every weight
            self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.shape[2], x.shape[3])
        t = self.patch_embed.norm(_to_tokens(x))
        ckpt = self.use_checkpoint and self.training
        for layer in self.layers:
            t = layer(t, hw, self.wkv_norm_tokens, ckpt)
        return _to_image(self.norm(t), hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        if h * w == 1:  # InstanceNorm needs two pixels; replicate and crop back
            x = F.pad(x, (0, 1, 0, 0), mode="replicate")
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.forward_features(feat)) + feat
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(feat)
        else:
            out = x + self.conv_last(feat)
        out = (out / self.img_range + mean)[:, :, : h * self.upscale, : w * self.upscale]
        return out if self.training else out.clamp(0.0, 1.0)


def _pixelshuffle_upsample(scale: int, num_feat: int) -> nn.Sequential:
    """SwinIR/BasicSR ``Upsample``: (conv 3x3 to 4*nf + PixelShuffle(2)) per factor 2, or one x3."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale {scale} is not supported by the pixelshuffle head; use 2^n or 3")
    return nn.Sequential(*layers)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        # N(0, 0.02) truncated at 2 sigma by clamping (trunc_normal_'s resampling via erfinv
        # costs seconds on the 20M-parameter configurations).
        with torch.no_grad():
            m.weight.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# Named variants. "x2"/"x4" are the released configurations (train_RWKVIRv4_SR_x{2,4}.yml);
# "tiny"/"small" are irx's own 1x configurations for CPU training and ablations.
RWKVIR_VARIANTS: dict[str, dict[str, Any]] = {
    "x2": dict(upscale=2, embed_dim=192, depths=[6] * 6, hidden_rate=3, shift_pixel=0, upsampler="pixelshuffle"),
    "x4": dict(upscale=4, embed_dim=192, depths=[6] * 6, hidden_rate=4, shift_pixel=1, upsampler="pixelshuffle"),
    "tiny": dict(upscale=1, embed_dim=48, depths=[2, 2], hidden_rate=2, shift_pixel=0, upsampler=""),
    "small": dict(upscale=1, embed_dim=96, depths=[4, 4, 4, 4], hidden_rate=2, shift_pixel=1, upsampler=""),
}


def build_rwkvir(variant: str = "tiny", scale: int | None = None, in_chans: int = 3, **overrides: Any) -> RWKVIR:
    """Build a named variant. ``scale`` > 1 on a 1x variant adds a pixelshuffledirect head;
    on "x2"/"x4" it must match. ``overrides`` replace any constructor argument."""
    if variant not in RWKVIR_VARIANTS:
        raise UsageError(f"unknown RWKV-IR variant {variant!r}; choose one of {', '.join(RWKVIR_VARIANTS)}")
    cfg = dict(RWKVIR_VARIANTS[variant])
    if scale is not None and scale != cfg["upscale"]:
        if cfg["upscale"] != 1:
            raise UsageError(
                f"RWKV-IR variant {variant!r} is x{cfg['upscale']} only; use scale {cfg['upscale']}, "
                f"or 'tiny'/'small' for scale {scale}"
            )
        cfg.update(upscale=scale, upsampler="" if scale == 1 else "pixelshuffledirect")
    cfg.update(in_chans=in_chans, **overrides)
    return RWKVIR(**cfg)


_BLOCK0 = "layers.0.residual_group.blocks.0.RWKV."


class RWKVIRArch(Architecture[RWKVIR]):
    """spandrel architecture for RWKV-IR: detects the release's keys, infers every hyper-parameter."""

    def __init__(self) -> None:
        super().__init__(
            id="RWKVIR",
            name="RWKV-IR",
            detect=KeyCondition.has_all(
                "conv_first.weight",
                "patch_embed.norm.weight",
                "conv_after_body.weight",
                _BLOCK0 + "att.spatial_decay_2",
                _BLOCK0 + "att.spatial_second",
                _BLOCK0 + "att.conv_scale",
                _BLOCK0 + "ffn.alpha",
                _BLOCK0 + "ffn.conv5x5.weight",
            ),
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[RWKVIR]:
        embed_dim, in_chans = state_dict["conv_first.weight"].shape[:2]
        n_groups = get_seq_len(state_dict, "layers")
        depths = [get_seq_len(state_dict, f"layers.{i}.residual_group.blocks") for i in range(n_groups)]
        hidden = state_dict[_BLOCK0 + "ffn.key.weight"].shape[0]
        if hidden % embed_dim:
            raise ValueError(f"RWKV-IR: ffn width {hidden} is not a multiple of embed_dim {embed_dim}")
        hidden_rate = hidden // embed_dim
        # The amount of the Q-shift is not stored; the release uses 1 whenever it is on.
        shift_pixel = 1 if _BLOCK0 + "att.spatial_mix_k" in state_dict else 0

        num_feat = 64
        if "conv_before_upsample.0.weight" in state_dict:
            upsampler = "pixelshuffle"
            upscale, num_feat = get_pixelshuffle_params(state_dict, "upsample")
        elif "upsample.0.weight" in state_dict:
            upsampler = "pixelshuffledirect"
            upscale = math.isqrt(state_dict["upsample.0.weight"].shape[0] // in_chans)
        else:
            upsampler, upscale = "", 1

        model = RWKVIR(
            upscale=upscale, in_chans=in_chans, embed_dim=embed_dim, depths=depths, hidden_rate=hidden_rate,
            shift_pixel=shift_pixel, upsampler=upsampler, num_feat=num_feat, init_weights=False,
        )  # fmt: skip
        tags = [f"{embed_dim}dim", "-".join(map(str, depths)), f"hr{hidden_rate}", f"shift{shift_pixel}"]
        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose="SR" if upscale > 1 else "Restoration",
            tags=tags,
            # fp16: relu(k)^2 and the unnormalised residual stream can overflow 65504 with
            # trained weights, which could not be checked (no official weights exist). bf16 has
            # fp32's range; Bi-WKV runs in fp32 internally either way.
            supports_half=False,
            supports_bfloat16=True,
            scale=upscale,
            input_channels=in_chans,
            output_channels=in_chans,
            size_requirements=SizeRequirements(),
            tiling=ModelTiling.SUPPORTED,
        )


__all__ = [
    "RGB_MEAN",
    "RWKVIR",
    "RWKVIR_VARIANTS",
    "RWKVIRArch",
    "build_rwkvir",
    "cross_bi_wkv",
    "q_shift",
]
