"""Bi-WKV: the O(T*C) scan against the O(T^2) definition, stability, precision, memory."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from irx.archs.bi_wkv import bi_wkv, bi_wkv_reference, chunk_length



def _inputs(b: int, t: int, c: int, k_scale: float, decay_scale: float, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, t, c, generator=g, dtype=dtype) * k_scale
    v = torch.randn(b, t, c, generator=g, dtype=dtype)
    decay = torch.randn(c, generator=g, dtype=dtype) * decay_scale
    first = torch.randn(c, generator=g, dtype=dtype) * 2
    return k, v, decay, first


def _grads(fn, args, upstream, **kw):
    args = [a.detach().clone().requires_grad_(True) for a in args]
    out = fn(*args, **kw)
    return out.detach(), torch.autograd.grad((out * upstream).sum(), args)


def _definition_at(k, v, decay, first, positions, norm_tokens=None):
    """The definition evaluated directly (float64, O(T) each) at a few output positions."""
    k, v = k.double(), v.double()
    t = k.shape[1]
    n = float(norm_tokens or t)
    w, u = decay.double() / n, first.double() / n
    idx = torch.arange(t, dtype=torch.float64)
    outs = []
    for p in positions:
        logits = -((idx - p).abs() - 1)[None, :, None] * w + k
        logits[:, p] = u + k[:, p]
        outs.append((torch.softmax(logits, dim=1) * v).sum(1))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("t", [1, 2, 3, 7, 64, 129])
@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("decay_scale", [1.0, 40.0])
def test_matches_definition_values_and_gradients_fp64(t: int, chunk: int | None, decay_scale: float) -> None:
    args = _inputs(2, t, 3, k_scale=3.0, decay_scale=decay_scale, seed=t)
    upstream = torch.randn(2, t, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref, ref_grads = _grads(bi_wkv_reference, args, upstream)
    out, grads = _grads(bi_wkv, args, upstream, chunk=chunk)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for name, g, rg in zip(("k", "v", "decay", "first"), grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-10, msg=f"gradient of {name}")


def test_fixed_norm_tokens_matches_definition() -> None:
    args = _inputs(1, 50, 4, k_scale=2.0, decay_scale=10.0, seed=3)
    upstream = torch.randn(1, 50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ref, ref_grads = _grads(bi_wkv_reference, args, upstream, norm_tokens=7)
    out, grads = _grads(bi_wkv, args, upstream, norm_tokens=7, chunk=3)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("t,chunk", [(33, None), (200, 16)])
def test_fp32_close_to_fp64_definition(t: int, chunk: int | None) -> None:
    args64 = _inputs(2, t, 5, k_scale=5.0, decay_scale=20.0, seed=7)
    upstream = torch.randn(2, t, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    ref, ref_grads = _grads(bi_wkv_reference, args64, upstream)
    out, grads = _grads(bi_wkv, [a.float() for a in args64], upstream.float(), chunk=chunk)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    # The decay gradient sums position-weighted terms that largely cancel: ~1e-4 in fp32.
    for name, g, rg, tol in zip(["k", "v", "decay", "first"], grads, ref_grads, (1e-4, 1e-4, 1e-3, 1e-4)):
        rel = (g.double() - rg).abs().max().item() / rg.abs().max().item()
        assert rel <= tol, f"gradient of {name}: relative error {rel:.1e}"


def test_large_keys_long_sequence_stay_finite_and_exact() -> None:
    # |k| ~ 30 gives weights e^{+-90}: a naive exp/cumsum overflows fp32 here.
    t, c = 65536, 4
    k, v, _, first = _inputs(1, t, c, k_scale=30.0, decay_scale=1.0, seed=5, dtype=torch.float32)
    decay = torch.tensor([-40.0, -5.0, 5.0, 40.0])
    positions = [0, 1, 777, 40000, t - 2, t - 1]
    for norm in (None, 64):  # 64: T*|w| = 40 * 1024, the decay ramp is far beyond fp32's exp range
        kk, vv = k.clone().requires_grad_(True), v.clone().requires_grad_(True)
        out = bi_wkv(kk, vv, decay, first, norm_tokens=norm)
        assert torch.isfinite(out).all()
        # A weighted average of v: never outside [min v, max v] of its channel.
        assert (out >= v.amin(1, keepdim=True) - 1e-5).all() and (out <= v.amax(1, keepdim=True) + 1e-5).all()
        expected = _definition_at(k, v, decay, first, positions, norm_tokens=norm)
        torch.testing.assert_close(out[:, positions].double(), expected, rtol=0, atol=1e-5)
        out.square().sum().backward()
        assert torch.isfinite(kk.grad).all() and torch.isfinite(vv.grad).all()


def test_bf16_autocast_computes_in_fp32_and_agrees() -> None:
    k, v, decay, first = _inputs(2, 300, 8, k_scale=2.0, decay_scale=5.0, seed=11, dtype=torch.float32)
    ref = bi_wkv(k, v, decay, first)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bi_wkv(k.bfloat16(), v.bfloat16(), decay, first)
    assert out.dtype == torch.bfloat16
    # Only the bf16 rounding of the inputs and of the result remains (~3 significant digits).
    err = (out.float() - ref).abs().max().item()
    assert err < 0.03 * v.abs().max().item()


class _LargestTensor(TorchDispatchMode):
    """Records the number of elements of the largest tensor any aten op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


def test_never_materialises_a_t_by_t_tensor() -> None:
    t = 256
    k, v, decay, first = _inputs(1, t, 2, k_scale=1.0, decay_scale=3.0, dtype=torch.float32)
    k.requires_grad_(True)
    # The probe sees a quadratic implementation (so this test can fail) ...
    with _LargestTensor() as probe:
        bi_wkv_reference(k.detach(), v, decay, first)
    assert probe.largest >= t * t
    # ... and sees only linear-size tensors in bi_wkv, forward and backward.
    with _LargestTensor() as probe:
        out = bi_wkv(k, v, decay, first, chunk=16)
        out.sum().backward()
    assert probe.largest <= 16 * t * 2


def test_fixed_norm_tokens_makes_results_independent_of_sequence_length() -> None:
    # Tokens with k = -200 carry weight e^-200 (exactly 0 after rounding), so appending them
    # changes nothing -- provided the decay per token does not change with the length.
    k, v, decay, first = _inputs(1, 40, 3, k_scale=1.0, decay_scale=8.0, seed=2, dtype=torch.float32)
    pad_k = torch.full((1, 60, 3), -200.0)
    v_pad = torch.rand(1, 60, 3, generator=torch.Generator().manual_seed(9))
    k_long, v_long = torch.cat([k, pad_k], 1), torch.cat([v, v_pad], 1)
    short = bi_wkv(k, v, decay, first, norm_tokens=40)
    long = bi_wkv(k_long, v_long, decay, first, norm_tokens=40)[:, :40]
    torch.testing.assert_close(long, short, rtol=1e-5, atol=1e-6)
    default_long = bi_wkv(k_long, v_long, decay, first)[:, :40]  # N = 100 tokens: other decay
    assert (default_long - short).abs().max() > 1e-3


def test_shift_invariance_and_chunk_length() -> None:
    k, v, decay, first = _inputs(1, 70, 3, k_scale=2.0, decay_scale=4.0, dtype=torch.float32)
    torch.testing.assert_close(bi_wkv(k, v + 5.0, decay, first), bi_wkv(k, v, decay, first) + 5.0, atol=2e-5, rtol=0)
    assert chunk_length(0.0, 10) == 10
    assert chunk_length(0.01, 100000) == 800  # L * |w| <= 8
    assert chunk_length(100.0, 50) == 1


def test_rejects_bad_shapes() -> None:
    k, v, decay, first = _inputs(1, 5, 3, 1.0, 1.0, dtype=torch.float32)
    with pytest.raises(ValueError):
        bi_wkv(k, v[:, :4], decay, first)
    with pytest.raises(ValueError):
        bi_wkv(k, v, decay[:2], first)
