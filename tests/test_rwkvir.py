"""RWKV-IR: release state-dict layout, spandrel round trips, shapes, precision, fixed-N plumbing."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel import MAIN_REGISTRY, ArchSupport, ImageModelDescriptor, ModelLoader

from irx.archs.bi_wkv import bi_wkv_reference
from irx.archs.rwkvir import RWKVIR, RWKVIR_VARIANTS, RWKVIRArch, build_rwkvir, cross_bi_wkv, q_shift
from irx.errors import UsageError



LAYOUT = Path(__file__).parent / "data" / "rwkvir_state_dict.txt"
OFFICIAL_PARAMS = {"x2": 20_238_803, "x4": 23_061_459}


def _release_layout() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Parse the authors' layout file: {"x2": [(key, shape), ...], "x4": [...]}, in order."""
    sections = re.split(r"^## ", LAYOUT.read_text(), flags=re.MULTILINE)[1:]
    layouts = {}
    for sec in sections:
        lines = sec.strip().splitlines()
        name = re.search(r"SR_(x\d)", lines[0]).group(1)
        n_keys = int(re.search(r"n_keys=(\d+)", lines[0]).group(1))
        entries = [
            (ln.split(" ", 1)[0], tuple(int(d) for d in re.findall(r"\d+", ln.split(" ", 1)[1]))) for ln in lines[1:]
        ]
        assert len(entries) == n_keys
        layouts[name] = entries
    return layouts


@pytest.fixture(scope="module")
def loader() -> ModelLoader:
    try:  # the package's own registration, once it exists
        from irx.archs import register_spandrel  # type: ignore[attr-defined]
    except ImportError:
        register_spandrel = None
    if register_spandrel is not None:
        register_spandrel()
    MAIN_REGISTRY.add(ArchSupport.from_architecture(RWKVIRArch()), ignore_duplicates=True)
    return ModelLoader()


def _variant_hparams(variant: str) -> dict:
    with torch.device("meta"):
        return build_rwkvir(variant).hparams


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", ["x2", "x4"])
def test_official_configs_reproduce_the_release_layout(variant: str) -> None:
    expected = _release_layout()[variant]
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = build_rwkvir(variant)
        fresh = build_rwkvir(variant)
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == expected  # same names, shapes and order
    assert _n_params(model) == OFFICIAL_PARAMS[variant]
    # A checkpoint in the release layout loads strictly (as it would from the authors' code).
    fresh.load_state_dict(model.state_dict(), strict=True, assign=True)


def _roundtrip(model: RWKVIR, tmp_path: Path, loader: ModelLoader) -> ImageModelDescriptor:
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    desc = loader.load_from_file(path)
    assert isinstance(desc, ImageModelDescriptor)
    assert desc.architecture.id == "RWKVIR"
    assert isinstance(desc.model, RWKVIR)
    assert desc.model.hparams == model.hparams
    loaded = desc.model.state_dict()
    assert loaded.keys() == model.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    return desc


@pytest.mark.parametrize("variant", ["x2", "x4"])
def test_official_layouts_load_through_spandrel(variant: str, tmp_path: Path, loader: ModelLoader) -> None:
    # A checkpoint written straight from the layout file (no model of ours involved).
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen).half() for k, shape in _release_layout()[variant]}
    path = tmp_path / f"rwkvir_{variant}.safetensors"
    save_file(state, str(path))
    desc = loader.load_from_file(path)
    assert isinstance(desc.model, RWKVIR) and desc.architecture.id == "RWKVIR"
    assert desc.model.hparams == _variant_hparams(variant)
    assert desc.scale == RWKVIR_VARIANTS[variant]["upscale"] and desc.purpose == "SR"
    assert desc.input_channels == 3 and desc.output_channels == 3
    assert desc.supports_bfloat16 and not desc.supports_half
    loaded = desc.model.state_dict()
    assert all(torch.equal(loaded[k], v.float()) for k, v in state.items())


@pytest.mark.parametrize(
    "overrides",
    [
        dict(variant="tiny"),
        dict(variant="tiny", scale=2),
        dict(variant="tiny", in_chans=1, depths=[1, 2, 1], hidden_rate=3, shift_pixel=1),
        dict(variant="tiny", upscale=3, upsampler="pixelshuffle", num_feat=16, embed_dim=24, depths=[1]),
        dict(variant="tiny", upscale=4, upsampler="pixelshuffle", num_feat=8, embed_dim=16, depths=[2]),
    ],
)
def test_small_models_round_trip_with_identical_outputs(overrides: dict, tmp_path: Path, loader: ModelLoader) -> None:
    torch.manual_seed(0)
    overrides = dict(overrides)
    model = build_rwkvir(overrides.pop("variant"), **overrides).eval()
    desc = _roundtrip(model, tmp_path, loader)
    assert desc.scale == model.upscale
    assert desc.purpose == ("Restoration" if model.upscale == 1 else "SR")
    assert desc.input_channels == model.in_chans
    x = torch.rand(2, model.in_chans, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(desc.model.eval()(x), model(x), rtol=0, atol=0)
        out = desc(x)  # spandrel's call path (padding, dtype handling)
    assert out.shape == (2, model.in_chans, 9 * model.upscale, 7 * model.upscale)


def test_basicsr_checkpoint_with_params_ema_loads(tmp_path: Path, loader: ModelLoader) -> None:
    # The authors train with BasicSR, whose checkpoints wrap the weights in "params_ema".
    model = build_rwkvir("tiny", scale=2, embed_dim=16, depths=[1])
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params_ema": model.state_dict(), "params": model.state_dict()}, path)
    desc = loader.load_from_file(path)
    assert isinstance(desc.model, RWKVIR) and desc.scale == 2 and desc.model.hparams == model.hparams


def test_detect_is_specific() -> None:
    arch = RWKVIRArch()
    sd = build_rwkvir("tiny").state_dict()
    assert arch.detect(sd)
    without_second_scan = {k: v for k, v in sd.items() if "spatial_decay_2" not in k}
    assert not arch.detect(without_second_scan)  # e.g. a plain Vision-RWKV layout
    assert not arch.detect({"conv_first.weight": torch.zeros(8, 3, 3, 3)})


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (16, 16)])
def test_output_shapes_any_size(scale: int, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny", scale=scale, embed_dim=16, depths=[1]).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, *hw))
    assert out.shape == (3, 3, hw[0] * scale, hw[1] * scale)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_deterministic_and_batch_independent() -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny", shift_pixel=1).eval()
    x = torch.rand(3, 3, 12, 10)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, rtol=1e-5, atol=1e-5)


def test_heads_add_the_image_or_the_mean() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 10, 6)
    restore = build_rwkvir("tiny", embed_dim=16, depths=[1]).eval()
    sr = build_rwkvir("tiny", embed_dim=16, depths=[1], upscale=2, upsampler="pixelshuffle", num_feat=8).eval()
    with torch.no_grad():
        for m in (restore, sr):
            m.conv_last.weight.zero_()
            m.conv_last.bias.zero_()
        torch.testing.assert_close(restore(x), x, rtol=0, atol=1e-6)  # 1x: input + conv_last(features)
        mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand(2, 3, 20, 12)
        torch.testing.assert_close(sr(x), mean, rtol=0, atol=1e-6)  # SR: head output + RGB mean


def test_trains_and_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny", embed_dim=16, depths=[1, 1], shift_pixel=1)
    x = torch.rand(2, 3, 16, 16)
    target = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(4):
        loss = (model(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert losses[-1] < losses[0]


def test_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = build_rwkvir("tiny", embed_dim=16, depths=[2])
    ckpt = copy.deepcopy(plain)
    ckpt.use_checkpoint = True
    x = torch.rand(1, 3, 12, 12)
    for m in (plain, ckpt):
        (m(x) - x).abs().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_bf16_weights_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny", shift_pixel=1).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        out = copy.deepcopy(model).bfloat16()(x.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.03


def test_bf16_autocast_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert (out.float() - ref).abs().max() < 0.02


def test_wkv_norm_tokens_reaches_the_scan() -> None:
    torch.manual_seed(0)
    model = build_rwkvir("tiny", embed_dim=16, depths=[1]).eval()
    with torch.no_grad():
        for block in model.modules():  # strong decays, so the normaliser matters
            if hasattr(block, "spatial_decay"):
                block.spatial_decay.fill_(20.0)
                block.spatial_decay_2.fill_(-20.0)
        small, big = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16)
        base_small, base_big = model(small), model(big)
        model.wkv_norm_tokens = 64  # = tokens of the 8x8 input
        torch.testing.assert_close(model(small), base_small, rtol=0, atol=0)
        assert (model(big) - base_big).abs().max() > 1e-4


def test_cross_bi_wkv_is_row_scan_plus_column_scan() -> None:
    g = torch.Generator().manual_seed(0)
    b, h, w, c = 2, 3, 5, 4
    k, v = (torch.randn(b, h * w, c, generator=g, dtype=torch.float64) for _ in range(2))
    decays = tuple(torch.randn(c, generator=g, dtype=torch.float64) * 5 for _ in range(2))
    firsts = tuple(torch.randn(c, generator=g, dtype=torch.float64) for _ in range(2))
    out = cross_bi_wkv(k, v, (h, w), decays, firsts, None)

    def cols(x: torch.Tensor) -> torch.Tensor:  # column-major token order: (x, y) -> x * h + y
        return x.view(b, h, w, c).transpose(1, 2).reshape(b, h * w, c)

    rows_ref = bi_wkv_reference(k, v, decays[0], firsts[0])
    cols_ref = bi_wkv_reference(cols(k), cols(v), decays[1], firsts[1])
    cols_ref = cols_ref.view(b, w, h, c).transpose(1, 2).reshape(b, h * w, c)
    torch.testing.assert_close(out, rows_ref + cols_ref, rtol=1e-10, atol=1e-10)


def test_q_shift_moves_channel_groups() -> None:
    x = torch.arange(2 * 8 * 3 * 4, dtype=torch.float32).view(2, 8, 3, 4)
    y = q_shift(x, 1)
    assert torch.equal(y[:, 0::4, :, 1:], x[:, 0::4, :, :-1]) and (y[:, 0::4, :, 0] == 0).all()
    assert torch.equal(y[:, 1::4, :, :-1], x[:, 1::4, :, 1:])
    assert torch.equal(y[:, 2::4, 1:], x[:, 2::4, :-1]) and (y[:, 2::4, 0] == 0).all()
    assert torch.equal(y[:, 3::4, :-1], x[:, 3::4, 1:])


def test_variants_and_validation() -> None:
    assert 100_000 <= _n_params(build_rwkvir("tiny")) <= 500_000
    assert 2_000_000 <= _n_params(build_rwkvir("small")) <= 5_000_000
    assert build_rwkvir("tiny", scale=2).upsampler == "pixelshuffledirect"
    with pytest.raises(UsageError):
        build_rwkvir("x2", scale=4)
    with pytest.raises(UsageError):
        build_rwkvir("nope")
    with pytest.raises(ValueError):
        RWKVIR(upscale=2, upsampler="")
