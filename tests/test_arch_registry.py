"""irx.archs registry: build_model, and irx's private spandrel registry (built-ins + extras + ours)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from spandrel import MAIN_REGISTRY, ModelLoader
from torch import nn

from irx.archs import build_model, register_spandrel, spandrel_registry
from irx.archs.laformer import LAformerUNet, detect_laformer
from irx.errors import ModelError

def _builtin_models() -> dict[str, Callable[[], nn.Module]]:
    """Small instances of a few spandrel built-ins, keyed by the arch id spandrel must report."""
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact
    from spandrel.architectures.DnCNN.__arch.network_dncnn import DnCNN
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet
    from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet
    from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

    return {
        "NAFNet": lambda: NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
        "SwinIR": lambda: SwinIR(
            img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2,
            upsampler="pixelshuffledirect",
        ),
        "Compact": lambda: SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2),
        "DnCNN": lambda: DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R"),
        "ESRGAN": lambda: RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2),
    }


def _ours() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "laformer-1x": build_model("laformer", "tiny", scale=1),
        "laformer-2x-plain": build_model("laformer", "tiny", scale=2, rank_enhance=False),
        "rwkvir-1x": build_model("rwkvir", "tiny", scale=1),
        "rwkvir-4x": build_model("rwkvir", "tiny", scale=4),
    }


def test_private_registry_is_built_once_and_ours_come_first() -> None:
    registry = spandrel_registry()
    assert spandrel_registry() is registry
    assert "LAformer" in registry and "RWKVIR" in registry
    order = [s.architecture.id for s in registry.architectures("detection")]
    assert set(order[:2]) == {"LAformer", "RWKVIR"}
    # Every built-in is there, in spandrel's own detection order after ours.
    builtins = [s.architecture.id for s in MAIN_REGISTRY.architectures("detection") if s.architecture.id not in ("LAformer", "RWKVIR")]
    assert [a for a in order if a in builtins] == builtins


def test_private_registry_leaves_spandrel_global_alone(monkeypatch) -> None:
    import irx.archs

    monkeypatch.setattr(irx.archs, "_registry", None)  # force a fresh build
    before = [s.architecture.id for s in MAIN_REGISTRY.architectures()]
    spandrel_registry()
    assert [s.architecture.id for s in MAIN_REGISTRY.architectures()] == before


def test_extra_arches_are_in_the_private_registry() -> None:
    extra = pytest.importorskip("spandrel_extra_arches")
    registry = spandrel_registry()
    for support in extra.EXTRA_REGISTRY:
        assert support.architecture.id in registry
    from spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch import Restormer

    sd = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1]).state_dict()
    assert registry.load(sd).architecture.id == "Restormer"


def test_register_spandrel_is_an_idempotent_opt_in() -> None:
    register_spandrel()
    n = len(MAIN_REGISTRY)
    register_spandrel()
    assert len(MAIN_REGISTRY) == n and "LAformer" in MAIN_REGISTRY and "RWKVIR" in MAIN_REGISTRY


def test_builtins_still_load_as_themselves() -> None:
    """irx's detectors sit before every built-in, so they must never claim a built-in model."""
    registry = spandrel_registry()
    for arch_id, make in _builtin_models().items():
        sd = make().state_dict()
        assert not detect_laformer(sd), arch_id
        assert not registry["RWKVIR"].detect(sd), arch_id
        assert registry.load(sd).architecture.id == arch_id


def test_no_builtin_claims_our_state_dicts() -> None:
    """Even without the ordering, no other detector takes an irx model, and ours load right."""
    registry = spandrel_registry()
    expected = {"laformer": "LAformer", "rwkvir": "RWKVIR"}
    for name, model in _ours().items():
        sd = model.state_dict()
        claimed = [
            s.architecture.id
            for s in registry.architectures()
            if s.architecture.id not in ("LAformer", "RWKVIR") and s.detect(sd)
        ]
        assert claimed == [], (name, claimed)
        assert registry.load(sd).architecture.id == expected[name.split("-")[0]]
        # The two irx detectors do not claim each other's models either.
        assert detect_laformer(sd) == name.startswith("laformer")


def test_descriptor_fields(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import save_file

    model = build_model("laformer", "tiny", scale=1, in_chans=1)
    path = tmp_path / "grey.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    desc = ModelLoader(registry=spandrel_registry()).load_from_file(path)
    assert isinstance(desc.model, LAformerUNet)
    assert (desc.purpose, desc.scale, desc.input_channels, desc.output_channels) == ("Restoration", 1, 1, 1)
    assert desc.supports_half and desc.supports_bfloat16
    assert desc.size_requirements.none
    out = desc(torch.rand(1, 1, 11, 13))
    assert out.shape == (1, 1, 11, 13)


def test_build_model_dispatch_and_errors() -> None:
    assert build_model("rwkvir", "tiny").__class__.__name__ == "RWKVIR"
    assert build_model("laformer", "tiny", rank_enhance=False).rank_enhance is False
    with pytest.raises(ModelError, match="unknown architecture"):
        build_model("swinir")
