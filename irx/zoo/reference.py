"""Random-weight stand-ins for the zoo's third-party files, in each file's real configuration and layout.

The zoo's conformance test and ``benchmarks/zoo.py`` need a checkpoint that spandrel must detect
exactly as it would detect the published file: the same architecture class (spandrel's or
spandrel_extra_arches' reference implementation), the same hyper-parameters, the same file format
and the same key layout (``{"params": ...}`` for BasicSR-trained files, bare KAIR state dicts, ...).
Only the numbers are random. Nothing here downloads anything.

``REFERENCES`` maps a record name to a :class:`Reference`; where a layout is inferred from the
publisher's training code rather than read from the file itself, ``note`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

Layout = str  # "bare" | "params" | "params_ema"


@dataclass(frozen=True)
class Reference:
    """How to build a stand-in for one record's file."""

    build: Callable[[], nn.Module]
    layout: Layout = "bare"  # the container the publisher saves the state dict in
    esrgan_new_keys: bool = False  # BasicSR's RRDBNet key names instead of the old ESRGAN ones
    note: str = ""


# ---------------------------------------------------------------- builders (real hyper-parameters)


def _scunet() -> nn.Module:
    from spandrel.architectures.SCUNet.__arch.SCUNet import SCUNet

    return SCUNet(in_nc=3, config=[4, 4, 4, 4, 4, 4, 4], dim=64)


def _drunet(channels: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from spandrel.architectures.DRUNet.__arch.network_unet import DRUNet

        # DRUNet takes the image plus a noise-level map.
        return DRUNet(in_nc=channels + 1, out_nc=channels, nc=[64, 128, 256, 512], nb=4, act_mode="R")

    return build


def _restormer(layer_norm: str, channels: int = 3) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch import Restormer

        # The configuration of every file in the authors' release (Restormer.py / the test scripts).
        return Restormer(inp_channels=channels, out_channels=channels, dim=48, num_blocks=[4, 6, 6, 8],
                         num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False,
                         LayerNorm_type=layer_norm)

    return build


def _rrdb(scale: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet

        if scale == 2:
            # Real-ESRGAN x2 unshuffles the input by 2 and upsamples by 4 (BasicSR's RRDBNet).
            return RRDBNet(in_nc=12, out_nc=3, num_filters=64, num_blocks=23, scale=4, shuffle_factor=2)
        return RRDBNet(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=scale)

    return build


def _dat(scale: int, expansion: float) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from spandrel.architectures.DAT.__arch.DAT import DAT

        return DAT(img_size=64, in_chans=3, embed_dim=180, split_size=[8, 32], depth=[6] * 6, num_heads=[6] * 6,
                   expansion_factor=expansion, upscale=scale, resi_connection="1conv", upsampler="pixelshuffle")

    return build


def _realplksr() -> nn.Module:
    from spandrel.architectures.PLKSR.__arch.RealPLKSR import RealPLKSR

    return RealPLKSR(dim=64, n_blocks=28, upscaling_factor=4, kernel_size=17, split_ratio=0.25, use_ea=True,
                     norm_groups=4, layer_norm=True)


def _nafnet(middle: int, enc: list[int], dec: list[int]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet

        return NAFNet(img_channel=3, width=64, middle_blk_num=middle, enc_blk_nums=enc, dec_blk_nums=dec)

    return build


def _hat_l_x4() -> nn.Module:
    from spandrel.architectures.HAT.__arch.HAT import HAT

    # options/test/HAT-L_SRx4_ImageNet-pretrain.yml of the HAT repository.
    return HAT(img_size=64, in_chans=3, window_size=16, compress_ratio=3, squeeze_factor=30, conv_scale=0.01,
               overlap_ratio=0.5, img_range=1.0, depths=[6] * 12, embed_dim=180, num_heads=[6] * 12, mlp_ratio=2,
               upscale=4, upsampler="pixelshuffle", resi_connection="1conv")


def _fbcnn() -> nn.Module:
    from spandrel.architectures.FBCNN.__arch.FBCNN import FBCNN

    return FBCNN(in_nc=3, out_nc=3, nc=[64, 128, 256, 512], nb=4, act_mode="R")


def _cidnet() -> nn.Module:
    from spandrel.architectures.HVICIDNet.__arch.cidnet import CIDNet

    return CIDNet(channels=[36, 36, 72, 144], heads=[1, 2, 4, 8], norm=False)


_BASICSR = "saved by BasicSR's trainer"
_KAIR = "a bare state dict, as KAIR (and deepinv's copies of KAIR models) save them"

REFERENCES: dict[str, Reference] = {
    "scunet-real-psnr": Reference(_scunet, note=_KAIR),
    "drunet-color": Reference(_drunet(3), note=_KAIR),
    "drunet-gray": Reference(_drunet(1), note=_KAIR),
    "nafnet-sidd-width64": Reference(_nafnet(12, [2, 2, 4, 8], [2, 2, 2, 2]), "params", note=_BASICSR),
    "nafnet-gopro-width64": Reference(_nafnet(1, [1, 1, 1, 28], [1, 1, 1, 1]), "params", note=_BASICSR),
    "restormer-denoise-color-blind": Reference(_restormer("BiasFree"), "params", note=_BASICSR),
    "restormer-denoise-gray-blind": Reference(_restormer("BiasFree", channels=1), "params", note=_BASICSR),
    "restormer-real-denoise": Reference(_restormer("BiasFree"), "params", note=_BASICSR),
    "restormer-derain": Reference(_restormer("WithBias"), "params", note=_BASICSR),
    "restormer-defocus-deblur": Reference(_restormer("WithBias"), "params", note=_BASICSR),
    "restormer-motion-deblur": Reference(_restormer("WithBias"), "params", note=_BASICSR),
    "realesrgan-x2": Reference(_rrdb(2), "params_ema", esrgan_new_keys=True, note=_BASICSR + " (assumed)"),
    "realesrgan-x4": Reference(_rrdb(4), "params_ema", esrgan_new_keys=True, note=_BASICSR + " (assumed)"),
    "realesrgan-x8": Reference(_rrdb(8), "params_ema", esrgan_new_keys=True, note=_BASICSR + " (assumed)"),
    "ultrasharp-x4": Reference(_rrdb(4), note="old ESRGAN key names, bare, as safetensors"),
    "dat-x2": Reference(_dat(2, 4.0), note="bare, as safetensors"),
    "dat-x3": Reference(_dat(3, 4.0), note="bare, as safetensors"),
    "dat-x4": Reference(_dat(4, 4.0), note="bare, as safetensors"),
    "dat-official-x2": Reference(_dat(2, 4.0), "params", note=_BASICSR),
    "dat-official-x3": Reference(_dat(3, 4.0), "params", note=_BASICSR),
    "dat-official-x4": Reference(_dat(4, 4.0), "params", note=_BASICSR),
    "realwebphoto-v4-dat2-x4": Reference(_dat(4, 2.0), note="DAT-2, bare, as safetensors"),
    "nomos-webphoto-realplksr-x4": Reference(_realplksr, note="neosr's RealPLKSR defaults (assumed), bare"),
    "hat-l-x4": Reference(_hat_l_x4, "params_ema", note=_BASICSR + " (the HAT test configs read params_ema)"),
    "fbcnn-color": Reference(_fbcnn, note=_KAIR),
    "hvi-cidnet-generalization": Reference(_cidnet, note="bare, as huggingface_hub's PyTorchModelHubMixin saves"),
    "hvi-cidnet-lolv1": Reference(_cidnet, note="bare, as huggingface_hub's PyTorchModelHubMixin saves"),
}


# ---------------------------------------------------------------- writing a stand-in file


def reference_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-weight state dict of record ``name``'s model, with the publisher's key names."""
    ref = REFERENCES[name]
    torch.manual_seed(seed)
    state = {k: v.detach().clone().contiguous() for k, v in ref.build().state_dict().items()}
    return _esrgan_new_keys(state) if ref.esrgan_new_keys else state


def write_reference_checkpoint(name: str, path: str | Path, seed: int = 0) -> Path:
    """Write record ``name``'s stand-in to ``path``: safetensors or a torch.save'd pickle, by suffix."""
    target = Path(path)
    state = reference_state_dict(name, seed)
    if target.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(target))
    else:
        layout = REFERENCES[name].layout
        torch.save(state if layout == "bare" else {layout: state}, target)
    return target


def parameter_count(name: str) -> int:
    """Learned parameters of record ``name``'s model (buffers not counted)."""
    return sum(p.numel() for p in REFERENCES[name].build().parameters())


def _esrgan_new_keys(old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old ESRGAN key names (``model.N...``) to BasicSR's RRDBNet names, as Real-ESRGAN files use."""
    trunk = max(int(m.group(1)) for k in old if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k)))
    last = max(int(k.split(".")[1]) for k in old)  # conv_last; conv_hr is two layers before it
    new: dict[str, torch.Tensor] = {}
    for key, value in old.items():
        kind = key.rsplit(".", 1)[1]
        if m := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", key):
            new[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{kind}"] = value
        elif key.startswith(f"model.1.sub.{trunk + 1}."):
            new[f"conv_body.{kind}"] = value
        else:
            index = int(key.split(".")[1])
            name = {0: "conv_first", last: "conv_last", last - 2: "conv_hr"}.get(index)
            new[f"{name or f'conv_up{index // 3}'}.{kind}"] = value
    return new
