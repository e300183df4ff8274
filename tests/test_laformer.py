"""LAformer: shapes, padding, determinism, spandrel round trips, linear cost, exactness, precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils._python_dispatch import TorchDispatchMode

from irx.archs import build_model, register_spandrel
from irx.archs.laformer import (
    LAFORMER_VARIANTS,
    RELA,
    LAformerSR,
    LAformerUNet,
    build_laformer,
    count_params,
    linear_attention,
)
from irx.errors import ModelError


# Small enough to run in milliseconds, but with blocks at full resolution and 2 levels.
MINI = dict(dim=8, depths=(1, 1), heads=(1, 2), refine_depth=1)
MINI_SR = dict(dim=8, group_depths=(1,), heads=2)


def _mini(scale: int = 1, in_chans: int = 3, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = MINI if scale == 1 else MINI_SR
    return build_laformer("tiny", scale=scale, in_chans=in_chans, **{**base, **kw}).eval()


def _save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(17, 23), (1, 1), (3, 16), (16, 5)])
def test_output_shape_any_size(scale: int, size: tuple[int, int]) -> None:
    model = build_model("laformer", "tiny", scale=scale).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(y).all()


def test_grey_model() -> None:
    for scale in (1, 2):
        model = build_model("laformer", "tiny", scale=scale, in_chans=1).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 1, 9, 10)).shape == (1, 1, 9 * scale, 10 * scale)


def test_batch_items_are_independent_and_deterministic() -> None:
    model = _mini()
    x = torch.rand(3, 3, 17, 23)
    with torch.no_grad():
        batched = model(x)
        again = model(x)
        single = model(x[1:2])
    assert torch.equal(batched, again)
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=1e-5)
    # Different images must give different outputs (the test above is not vacuous).
    assert (batched[0] - batched[1]).abs().max() > 1e-3


def test_global_residual_is_aligned_after_pad_and_crop() -> None:
    """With the output conv zeroed the U-Net is the identity and the SR model is bilinear."""
    unet = _mini()
    torch.nn.init.zeros_(unet.head.weight)
    torch.nn.init.zeros_(unet.head.bias)
    x = torch.rand(1, 3, 13, 7)
    with torch.no_grad():
        assert torch.equal(unet(x), x)
    sr = _mini(scale=3)
    torch.nn.init.zeros_(sr.upsample[0].weight)
    torch.nn.init.zeros_(sr.upsample[0].bias)
    with torch.no_grad():
        ref = F.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False)
        torch.testing.assert_close(sr(x), ref)


# Every variant at 1x and 4x; the SR body does not depend on the scale, so 2x/3x only for tiny.
ROUND_TRIPS = [(v, s) for v in sorted(LAFORMER_VARIANTS) for s in (1, 4)] + [("tiny", 2), ("tiny", 3)]


@pytest.mark.parametrize(("variant", "scale"), ROUND_TRIPS)
def test_spandrel_round_trip_every_variant(tmp_path: Path, variant: str, scale: int) -> None:
    from spandrel import ModelLoader

    register_spandrel()
    torch.manual_seed(1)
    model = build_model("laformer", variant, scale=scale).eval()
    path = _save(model, tmp_path / "m.safetensors")
    desc = ModelLoader().load_from_file(path)
    assert desc.architecture.id == "LAformer"
    assert desc.scale == scale and desc.input_channels == 3 and desc.output_channels == 3
    assert desc.purpose == ("Restoration" if scale == 1 else "SR")
    assert type(desc.model) is type(model)
    assert desc.model.hparams == {**model.hparams, "ffn_expansion": pytest.approx(model.hparams["ffn_expansion"], 0.01)}
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(desc.model.eval()(x), model(x))


def test_round_trip_grey_and_odd_configs(tmp_path: Path) -> None:
    from spandrel import ModelLoader

    register_spandrel()
    configs = [
        _mini(in_chans=1, rank_kernel=3),
        _mini(depths=(0, 2, 1), heads=(1, 2, 4), refine_depth=0, ffn_expansion=2.66),
        _mini(scale=2, in_chans=1, group_depths=(0, 2), ffn_expansion=1.5),
    ]
    for i, model in enumerate(configs):
        desc = ModelLoader().load_from_file(_save(model, tmp_path / f"m{i}.safetensors"))
        assert desc.model.hparams["in_chans"] == model.hparams["in_chans"]
        x = torch.rand(1, model.in_chans, 9, 11)
        with torch.no_grad():
            assert torch.equal(desc.model.eval()(x), model(x))


@pytest.mark.parametrize("scale", [1, 2])
def test_rank_enhance_false_is_detected(tmp_path: Path, scale: int) -> None:
    from spandrel import ModelLoader

    register_spandrel()
    plain = _mini(scale=scale, rank_enhance=False)
    assert not any("rank_conv" in k for k in plain.state_dict())
    assert any("rank_conv" in k for k in _mini(scale=scale).state_dict())
    desc = ModelLoader().load_from_file(_save(plain, tmp_path / "plain.safetensors"))
    assert desc.model.rank_enhance is False
    assert "plain-linear-attention" in desc.tags
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert torch.equal(desc.model.eval()(x), plain(x))


class _PeakNumel(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.peak = max(self.peak, t.numel())
        return out


def _softmax_attention(x: torch.Tensor) -> torch.Tensor:
    """Quadratic reference: plain global softmax attention over all tokens (one head)."""
    t = x.flatten(2).transpose(1, 2)  # (B, T, C)
    return torch.softmax(t @ t.transpose(1, 2), dim=-1) @ t


def test_attention_never_materialises_tokens_squared() -> None:
    tokens = 64 * 64
    x = torch.rand(1, 8, 64, 64, requires_grad=True)
    rela = RELA(8, heads=2)
    with _PeakNumel() as probe:
        rela(x).sum().backward()
    # Linear cost: every tensor is at most a few channels x tokens (3C x T for qkv).
    assert probe.peak <= 8 * 8 * tokens < tokens * tokens
    # The probe catches a quadratic attention at the same size.
    with _PeakNumel() as quad:
        _softmax_attention(x.detach())
    assert quad.peak >= tokens * tokens
    # Whole U-Net with blocks at full resolution (T = 4096 tokens there).
    model = _mini()
    with _PeakNumel() as whole, torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert whole.peak < tokens * tokens // 64


def test_linear_attention_matches_naive_quadratic() -> None:
    torch.manual_seed(3)
    b, h, d, n = 2, 3, 4, 37
    q, k = (F.elu(torch.randn(b, h, d, n, dtype=torch.float64)) + 1 for _ in range(2))
    v = torch.randn(b, h, d, n, dtype=torch.float64)
    scores = torch.einsum("bhdn,bhdm->bhnm", q, k)  # (T x T) kernel matrix, no softmax
    naive = torch.einsum("bhnm,bhdm->bhdn", scores / scores.sum(-1, keepdim=True), v)
    torch.testing.assert_close(linear_attention(q, k, v), naive, atol=1e-6, rtol=1e-6)


def test_rela_module_matches_naive_reference() -> None:
    """The full RELA mixer against a direct O(T^2) computation from its own weights."""
    torch.manual_seed(4)
    c, heads = 8, 2
    rela = RELA(c, heads).eval()
    with torch.no_grad():
        rela.temperature.copy_(torch.tensor([[[0.5]], [[2.0]]]))
    x = torch.randn(2, c, 5, 7)
    with torch.no_grad():
        qkv = rela.qkv(x)
        q, k, v = qkv.reshape(2, 3, heads, c // heads, 35).unbind(1)
        q = F.elu(q * rela.temperature) + 1
        k = F.elu(k) + 1
        a = torch.einsum("bhdn,bhdm->bhnm", q, k)
        att = torch.einsum("bhnm,bhdm->bhdn", a / a.sum(-1, keepdim=True), v).reshape(2, c, 5, 7)
        z = att + rela.rank_conv(qkv[:, 2 * c :])
        z = z * rela.ca(z.mean(dim=(2, 3), keepdim=True))
        torch.testing.assert_close(rela(x), rela.proj(z), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [1, 2])
def test_half_and_bfloat16_close_to_fp32(scale: int) -> None:
    model = _mini(scale=scale)
    x = torch.rand(2, 3, 24, 20)
    with torch.no_grad():
        ref = model(x)
        for dtype, tol in ((torch.float16, 0.01), (torch.bfloat16, 0.05)):
            low = _mini(scale=scale).to(dtype)
            out = low(x.to(dtype))
            assert out.dtype == dtype
            assert (out.float() - ref).abs().max() < tol
            with torch.autocast("cpu", dtype=dtype):
                auto = model(x)
            assert (auto.float() - ref).abs().max() < tol


def test_normaliser_survives_fp16_with_large_activations() -> None:
    rela = RELA(8, heads=2).half()
    x = torch.randn(1, 8, 64, 64).half() * 200  # fp16 sums of such kernels would overflow
    with torch.no_grad():
        assert torch.isfinite(rela(x)).all()


def test_variant_parameter_counts() -> None:
    limits = {"tiny": (0.1e6, 0.5e6), "small": (2e6, 5e6), "base": (20e6, 30e6)}
    for variant, (lo, hi) in limits.items():
        for scale in (1, 4):
            n = count_params(build_laformer(variant, scale=scale))
            assert lo <= n <= hi, (variant, scale, n)


def test_layouts_and_errors() -> None:
    assert isinstance(build_model("laformer", "tiny", scale=1), LAformerUNet)
    assert isinstance(build_model("LAformer", "tiny", scale=3), LAformerSR)
    with pytest.raises(ModelError, match="variant"):
        build_model("laformer", "huge")
    with pytest.raises(ModelError, match="architecture"):
        build_model("restormer")
    with pytest.raises(ValueError):
        LAformerUNet(dim=10, depths=(1, 1), heads=(3, 1))


def test_one_training_step_updates_every_parameter() -> None:
    model = _mini().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 16, 16)
    loss = (model(x) - x.flip(-1)).abs().mean()
    loss.backward()
    opt.step()
    unchanged = [k for k, v in model.state_dict().items() if torch.equal(v, before[k])]
    assert unchanged == []


def test_padding_reflects_where_it_can_and_replicates_tiny_inputs() -> None:
    from irx.archs.common import pad_bottom_right, pad_to_multiple

    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    same = pad_bottom_right(x, 3, 4)
    assert same is x  # nothing to do: the tensor itself
    padded, h, w = pad_to_multiple(x, 4)
    assert (h, w) == (3, 4) and padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[..., 3, :], x[..., 1, :])  # reflected: row 3 mirrors row 1
    tiny = torch.tensor([[[[5.0]]]])
    grown = pad_bottom_right(tiny, 4, 4)  # reflect is impossible from 1 px: replicate
    assert grown.shape == (1, 1, 4, 4) and bool((grown == 5.0).all())
