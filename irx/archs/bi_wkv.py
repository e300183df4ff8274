"""Bi-WKV (bidirectional RWKV attention) in pure PyTorch: exact, O(T*C), stable in fp32.

Definition, per channel, tokens t = 0..T-1, ``w = decay / N``, ``u = first / N`` where N is the
number of tokens of the feature map (or a fixed ``norm_tokens``)::

    wkv_t = (sum_{i != t} e^{-(|t-i|-1) w + k_i} v_i + e^{u + k_t} v_t)
          / (sum_{i != t} e^{-(|t-i|-1) w + k_i}     + e^{u + k_t})

i.e. a softmax-weighted average of ``v`` whose weights decay (w > 0) or grow (w < 0) with the
distance to t. The sum over i < t obeys ``F_{t+1} = e^{-w} F_t + e^{k_t} v_t`` (the sum over
i > t the mirrored recurrence), so it is a pair of linear scans, computed here as follows:

1. **Positive values.** wkv is an average, so ``wkv(v + c) = wkv(v) + c``. Shifting v per
   channel to ``v' = v - min(v) + 1 >= 1`` makes every numerator term positive, so numerators
   can be summarised in log space like denominators.
2. **Chunks of L tokens, max-shifted cumsums inside.** Inside a chunk the prefix sums
   ``sum_{j'<j} e^{k_j' + j' w - m} v'_j'`` (m = chunk max of ``k + j w``, so every factor is
   <= 1) are plain ``cumsum``s; the right-to-left direction is the same on the flipped
   sequence. L is chosen so that ``L * |w| <= 8`` (at most 4096): the decay ramp inside a chunk
   spans at most e^8, so a term more than e^-87 below the chunk maximum (where fp32
   underflows) is at least e^-70 below another term of the same output: dropping it is harmless.
   With N = T (the default) one chunk covers up to 8T/|decay| tokens.
3. **Carries between chunks in float64 log space.** Each chunk is summarised by the log of its
   decayed totals. The carry into chunk c, ``log sum_{c'<c} e^{total_c' - (c-1-c') L w}``, is a
   ``logcumsumexp`` of ``total + c' L w`` minus ``(c-1) L w``: no overflow whatever ``T * w``
   is, and float64 keeps the large ramp values precise (T/L entries per channel: cheap).
4. **One reference per chunk.** The five parts of an output (left part in the chunk, left
   carry, right part, right carry, the token itself) are taken relative to the chunk's largest
   log-magnitude (a float64 max; only the small differences are cast to fp32), so every
   exponential is <= e^8 and the denominator cannot vanish (except for absurd ``first``
   values, |u| > ~60, where it is clamped to the smallest normal number: finite output).
5. **Hand-written backward** (``_BiWKV``): one more scan of the same kind (log-weights
   ``-log D_t``, values g and g*y), so training saves 8 (B, T, C) tensors per call instead of
   the ~30 an autograd graph of step 1-4 would keep.

Everything runs in fp32 (float64 stays float64) with autocast disabled, whatever the input
dtype; the result is cast back. Memory is O(B*T*C); nothing of size T x T is ever formed.
Precision in fp32 (checked against the O(T^2) definition in float64): outputs ~1e-6 absolute
for unit-scale v, any T, any |k| (tested with |k| ~ 30 over 65536 tokens). With a fixed
``norm_tokens`` far below T the ramp T*|w| gets large; outputs stay at ~1e-6, but the gradients
lose about eps*T*|w| relative precision (decay: ~4e-3 and k: ~5e-5 at T*|w| ~ 1000).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# Stands in for log(0) (an empty carry); finite so that carry - reference never meets inf - inf.
_NEG = -1.0e30
# Key of padding tokens: weight exactly 0 whatever the other keys are (the scan runs without
# autograd, and every chunk holds at least one real token, so no inf - inf arises).
_PAD_K = float("-inf")
# Largest decay ramp allowed inside one chunk (L * |w| <= _RAMP).
_RAMP = 8.0
_MAX_CHUNK = 4096


def _shift_right(x: torch.Tensor, dim: int, fill: float) -> torch.Tensor:
    """x shifted by one position along ``dim`` towards higher indices, ``fill`` entering at 0."""
    head = torch.full_like(x.narrow(dim, 0, 1), fill)
    return torch.cat([head, x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)


def _exclusive(p: torch.Tensor) -> torch.Tensor:
    """Inclusive cumsum along dim -2 -> exclusive one (shifted by one, 0 first)."""
    out = torch.empty_like(p)
    out[..., 0, :] = 0
    out[..., 1:, :] = p[..., :-1, :]
    return out


def chunk_length(w_abs_max: float, tokens: int) -> int:
    """Chunk length L: at most 4096 tokens, and ``L * max|w| <= 8`` (see module docstring)."""
    limit = _MAX_CHUNK if w_abs_max <= 0 else max(1, min(_MAX_CHUNK, int(_RAMP / w_abs_max)))
    return max(1, min(limit, tokens))


class _Scan(NamedTuple):
    """Pieces of a Bi-WKV scan over M value sets x, each normalised by the denominator Z_t.

    "left" sums run over tokens i < t, "right" over i > t; "self" is e^{u + kap_t} x_t.
    """

    log_den: torch.Tensor  # (B, T, C) log Z_t
    d_sum: torch.Tensor  # (B, T, C) (left + right) share of Z_t (the rest is the token itself)
    d_diff: torch.Tensor  # (B, T, C) (right - left) share of Z_t
    n_total: torch.Tensor  # (M, B, T, C) weighted average of x: (left + right + self) / Z_t
    n_sum: torch.Tensor | None  # (M, B, T, C) (left + right) / Z_t, only when asked for
    n_diff: torch.Tensor  # (M, B, T, C) (right - left) / Z_t


@torch.no_grad()
def _scan(
    kap: torch.Tensor, xs: torch.Tensor, w: torch.Tensor, u: torch.Tensor, n_len: int, parts: str | None
) -> _Scan | torch.Tensor:
    """Bidirectional decayed sums with log-weights ``kap`` (B, T, C) over M positive value sets
    ``xs`` (M, B, T, C), ``x >= 1``. Returns the M weighted averages (M, B, T, C) when ``parts``
    is None, else the normalised pieces of ``_Scan`` (``n_sum`` only for parts="sum")."""
    b, t, c = kap.shape
    n_sets = xs.shape[0]
    dt = kap.dtype
    f64 = torch.float64
    n_chunks = math.ceil(t / n_len)
    pad = n_chunks * n_len - t
    if pad:
        kap = F.pad(kap, (0, 0, 0, pad), value=_PAD_K)
        xs = F.pad(xs, (0, 0, 0, pad), value=1.0)
    kc = kap.reshape(b, n_chunks, n_len, c)
    xc = xs.reshape(n_sets, b, n_chunks, n_len, c)

    # Both directions at once: index 0 scans left to right; index 1 is the flipped sequence,
    # whose "left" sums are the original right sums.
    ks = torch.stack([kc, kc.flip((1, 2))])  # (2, B, nc, L, C)
    xs2 = torch.stack([xc, xc.flip((2, 3))], dim=1)  # (M, 2, B, nc, L, C)
    jw = torch.arange(n_len, device=kap.device, dtype=dt).view(n_len, 1) * w  # (L, C) ramp

    # --- inside chunks: max-shifted inclusive prefix sums ------------------------------
    e = ks + jw
    m = e.amax(dim=3, keepdim=True)
    e.sub_(m).exp_()
    pd = e.cumsum(3)
    pn = (e * xs2).cumsum(4)
    del e

    # --- chunk totals (log, as of the chunk's last token) and float64 carries ---------------
    # Both cumsums contain the maximum term e^0 = 1 and x >= 1, so the logs are finite.
    m = m.squeeze(3)  # (2, B, nc, C)
    top = (m - (n_len - 1) * w).to(f64)
    lam = top + pd[..., -1, :].log().to(f64)
    lnum = top + pn[..., -1, :].log().to(f64)
    w64 = w.to(f64)
    ramp = torch.arange(n_chunks, device=kap.device, dtype=f64).view(n_chunks, 1) * (n_len * w64)
    # Carry into chunk c as of its token cL-1: log sum_{c'<c} e^{total_c' - (c-1-c') L w}.
    carry_d = _shift_right(torch.logcumsumexp(lam + ramp, -2) - ramp, -2, _NEG)
    carry_n = _shift_right(torch.logcumsumexp(lnum + ramp, -2) - ramp, -2, _NEG)

    # --- one float64 reference per chunk (original order), small offsets ---------------------
    m64 = m.to(f64)
    m_self = (kc + u).amax(dim=2).to(f64)
    ref = torch.stack([m64[0], m64[1].flip(1), m_self, carry_d[0], carry_d[1].flip(1)]).amax(0)
    refs = torch.stack([ref, ref.flip(1)])  # (2, B, nc, C)
    # In-chunk part of the exclusive sum at j: e^{m - (j-1) w} pd_ex = e^{-jw} e^{m + w} pd_ex.
    # e^{m + w - ref} <= e^w matters only for L >= 2, where |w| <= 4; with L = 1 pd_ex is 0 and
    # the clamp just keeps inf * 0 out.
    s_loc = torch.exp((m64 + w64 - refs).clamp_max(60.0)).to(dt).unsqueeze(-2)
    s_cd = torch.exp(carry_d - refs).to(dt).unsqueeze(-2)
    s_cn = torch.exp(carry_n - refs).to(dt).unsqueeze(-2)
    decay_j = torch.exp(-jw)  # (L, C), <= e^8

    den2 = _exclusive(pd).mul_(s_loc).add_(s_cd).mul_(decay_j)
    num2 = _exclusive(pn).mul_(s_loc).add_(s_cn).mul_(decay_j)
    del pd, pn
    den_l, den_r = den2[0], den2[1].flip((1, 2))
    num_l, num_r = num2[:, 0], num2[:, 1].flip((2, 3))
    ref_t = ref.to(dt).unsqueeze(2)
    self_w = torch.exp(kc + (u - ref_t))
    den = (den_l + den_r).add_(self_w).clamp_min_(torch.finfo(dt).tiny)

    def back(x: torch.Tensor) -> torch.Tensor:  # (..., nc, L, C) -> (..., T, C)
        return x.reshape(*x.shape[:-3], n_chunks * n_len, c)[..., :t, :]

    if parts is None:
        num = (num_l + num_r).addcmul_(self_w, xc)
        return back(num.div_(den))
    inv = den.reciprocal()
    num_sum = num_l + num_r
    return _Scan(
        log_den=back(den.log_().add_(ref_t)),
        d_sum=back((den_l + den_r).mul_(inv)),
        d_diff=back((den_r - den_l).mul_(inv)),
        n_total=back(torch.addcmul(num_sum, self_w, xc).mul_(inv)),
        n_sum=back(num_sum.mul_(inv)) if parts == "sum" else None,
        n_diff=back((num_r - num_l).mul_(inv)),
    )


def _positive(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x - s >= 1 with s = min(x) - 1 along ``dim``; averages of x are averages of x - s plus s."""
    s = x.amin(dim=dim, keepdim=True) - 1.0
    return x - s, s


class _BiWKV(torch.autograd.Function):
    """Bi-WKV with a hand-written backward: saves 8 (B, T, C) tensors instead of autograd's ~30.

    With D_t the denominator, y the output, W_ti the weights and h_t = g_t / D_t:
    ``dv_i = sum_t h_t W_ti`` and ``dk_i = sum_t h_t W_ti (v_i - y_t)`` are one more scan, with
    log-weights -log D_t and values g and g*y (made positive by the same shift trick);
    ``du = sum_t h_t W_tt (v_t - y_t)``; and since d W_ti / dw = (1 - |t - i|) W_ti off the
    diagonal, ``dw`` splits into per-output sums of the forward pass (left and right of t,
    weighted by t) and per-input parts of dk (from outputs right and left of i, weighted by i);
    positions are centred on the middle of the sequence to limit cancellation.
    """

    @staticmethod
    def forward(ctx: Any, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, u: torch.Tensor, n_len: int):
        vp, shift = _positive(v.unsqueeze(0), 2)
        s = _scan(k, vp, w, u, n_len, parts="sum")
        assert isinstance(s, _Scan) and s.n_sum is not None
        yp = s.n_total[0]
        # sum_{i != t} W_ti (v_i - y_t) / D_t over i < t plus i > t, and right minus left
        # (both shift-invariant, so the shifted v' and y' give the same).
        q_sum = torch.addcmul(s.n_sum[0], yp, s.d_sum, value=-1.0)
        q_diff = torch.addcmul(s.n_diff[0], yp, s.d_diff, value=-1.0)
        y = yp + shift[0]
        ctx.save_for_backward(k, v, w, u, y, s.log_den, q_sum, q_diff)
        ctx.n_len = n_len
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor):
        k, v, w, u, y, log_den, q_sum, q_diff = ctx.saved_tensors
        g = g.to(k.dtype)
        t = k.shape[1]
        xs = torch.empty((2, *g.shape), dtype=g.dtype, device=g.device)
        xs[0] = g
        torch.mul(g, y, out=xs[1])
        xs, shift = _positive(xs, 2)
        s = _scan(-log_den, xs, w, u, ctx.n_len, parts="diff")
        assert isinstance(s, _Scan)
        # Undo the shift: averages gain + shift; right - left shares gain shift * d_diff.
        total = s.n_total + shift  # (2, B, T, C): sets g and g*y
        a = torch.exp(k + s.log_den)  # sum_t W_ti / D_t <= T: no overflow
        gv = a * total[0]
        gk = a * (v * total[0] - total[1])
        gw = gu = None
        if ctx.needs_input_grad[2]:
            diff = torch.addcmul(s.n_diff, shift, s.d_diff)  # outputs right of i minus left of i
            gk_diff = a * (v * diff[0] - diff[1])
            tau = (torch.arange(t, device=k.device, dtype=k.dtype) - (t - 1) / 2).view(1, t, 1)
            terms = (g * q_sum).addcmul_(tau, gk_diff.addcmul_(g, q_diff))
            gw = terms.sum((0, 1), dtype=torch.float64).to(k.dtype)
        if ctx.needs_input_grad[3]:
            d_self = torch.exp(u + k - log_den)
            gu = (g * d_self * (v - y)).sum((0, 1), dtype=torch.float64).to(k.dtype)
        return gk, gv, gw, gu, None


def bi_wkv(
    k: torch.Tensor,
    v: torch.Tensor,
    decay: torch.Tensor,
    first: torch.Tensor,
    norm_tokens: int | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """Bi-WKV of (B, T, C) keys ``k`` and values ``v`` with per-channel ``decay`` and ``first`` (C,).

    ``w = decay / N`` and ``u = first / N`` with N = ``norm_tokens`` or T. Computed in fp32 (or
    float64 for float64 inputs) with autocast off; returns v's dtype. Differentiable in all four
    tensors. ``chunk`` caps the chunk length (tests use it to exercise the carries).
    """
    if k.shape != v.shape or k.dim() != 3:
        raise ValueError(f"k and v must both be (B, T, C); got {tuple(k.shape)} and {tuple(v.shape)}")
    if decay.shape != (k.shape[2],) or first.shape != (k.shape[2],):
        raise ValueError("decay and first must have shape (C,)")
    t = k.shape[1]
    if t == 0:
        return v.clone()
    out_dtype = v.dtype
    dt = torch.float64 if k.dtype == torch.float64 else torch.float32
    n = float(norm_tokens if norm_tokens is not None else t)
    with torch.autocast(device_type=k.device.type, enabled=False):
        kf, vf = k.to(dt).contiguous(), v.to(dt).contiguous()
        w, u = decay.to(dt) / n, first.to(dt) / n
        n_len = chunk_length(float(w.detach().abs().max()), t)
        if chunk is not None:
            n_len = max(1, min(n_len, chunk))
        if torch.is_grad_enabled() and any(x.requires_grad for x in (kf, vf, w, u)):
            out = _BiWKV.apply(kf, vf, w, u, n_len)
        else:
            vp, shift = _positive(vf.unsqueeze(0), 2)
            out = _scan(kf, vp, w, u, n_len, parts=None)[0] + shift[0]
    return out.to(out_dtype)


def bi_wkv_reference(
    k: torch.Tensor,
    v: torch.Tensor,
    decay: torch.Tensor,
    first: torch.Tensor,
    norm_tokens: int | None = None,
) -> torch.Tensor:
    """The O(T^2) definition, straight from the formula (builds a (B, T, T, C) tensor).

    For tests only. Computed as a softmax over i, which is the same ratio, in k's dtype.
    """
    t = k.shape[1]
    n = float(norm_tokens if norm_tokens is not None else t)
    w, u = decay / n, first / n
    pos = torch.arange(t, device=k.device)
    dist = (pos[:, None] - pos[None, :]).abs().to(k.dtype)  # (T, T): |t - i|
    logits = -(dist - 1)[None, :, :, None] * w + k[:, None, :, :]  # (B, T, T, C)
    eye = torch.eye(t, dtype=torch.bool, device=k.device)[None, :, :, None]
    logits = torch.where(eye, (u + k)[:, :, None, :].expand_as(logits), logits)
    weights = torch.softmax(logits, dim=2)
    return (weights * v[:, None, :, :]).sum(dim=2)


__all__ = ["bi_wkv", "bi_wkv_reference", "chunk_length"]
