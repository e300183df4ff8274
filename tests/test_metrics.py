"""PSNR/SSIM with BasicSR conventions, checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import convolve2d

from irx.metrics import psnr, quantize, rgb_to_y, ssim


def _pair(seed: int = 0, h: int = 40, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 5.0)[:, :, None] * np.cos(yy / 7.0)[:, :, None]
    base = np.repeat(base, 3, axis=2) * np.array([1.0, 0.8, 0.6])
    a = np.clip(base + 0.05 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
    b = np.clip(a + 0.08 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
    return a, b


def test_identical_images_give_inf_psnr_and_unit_ssim():
    a, _ = _pair()
    assert psnr(a, a) == math.inf
    assert psnr(a, a, y_channel=True) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a, crop_border=4, y_channel=True) == pytest.approx(1.0, abs=1e-12)


def test_known_mse_gives_its_psnr_exactly():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + 5  # MSE 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    c = a.copy()
    c[:8] += 10  # half the pixels off by 10: MSE 50
    assert psnr(a, c) == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-12)


def test_float_inputs_are_rounded_to_uint8_first():
    a = np.full((12, 12, 3), 100, np.uint8)
    f = (a.astype(np.float32) + 0.4) / 255  # rounds back to 100
    assert psnr(f, a) == math.inf
    g = (a.astype(np.float32) + 0.6) / 255  # rounds to 101: MSE 1
    assert psnr(g, a) == pytest.approx(20 * math.log10(255), abs=1e-12)
    assert np.array_equal(quantize(np.array([[[-0.2, 1.5, 0.5]]])), [[[0.0, 255.0, 128.0]]])


def test_y_channel_of_known_colours():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]],
                       np.uint8)
    y = rgb_to_y(colours)[0, :, 0]
    assert np.allclose(y, [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)


def test_y_psnr_equals_psnr_of_hand_computed_luma():
    a, b = _pair(1)
    qa, qb = np.round(a * 255.0), np.round(b * 255.0)
    w = np.array([65.481, 128.553, 24.966]) / 255.0
    ya, yb = 16 + qa @ w, 16 + qb @ w
    mse = np.mean((ya - yb) ** 2)
    assert psnr(a, b, y_channel=True) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)


def test_crop_border_ignores_differences_at_the_edges():
    a, _ = _pair(2)
    b = a.copy()
    b[:3] = 0
    b[:, -3:] = 1
    assert psnr(a, b) < 40
    assert psnr(a, b, crop_border=3) == math.inf
    assert ssim(a, b, crop_border=3) == pytest.approx(1.0)


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM per channel with scipy 'valid' convolution and a hand-built Gaussian window."""
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(x.shape[2]):
        p, q = x[:, :, c].astype(np.float64), y[:, :, c].astype(np.float64)

        def f(z):
            return convolve2d(z, win, mode="valid")

        mp, mq = f(p), f(q)
        sp, sq, spq = f(p * p) - mp**2, f(q * q) - mq**2, f(p * q) - mp * mq
        m = ((2 * mp * mq + c1) * (2 * spq + c2)) / ((mp**2 + mq**2 + c1) * (sp + sq + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


def test_ssim_matches_a_scipy_reference():
    a, b = _pair(3)
    qa, qb = np.round(a * 255.0), np.round(b * 255.0)
    assert ssim(a, b) == pytest.approx(_reference_ssim(qa, qb), abs=1e-9)
    w = np.array([65.481, 128.553, 24.966]) / 255.0
    ya, yb = (16 + qa @ w)[:, :, None], (16 + qb @ w)[:, :, None]
    assert ssim(a, b, y_channel=True) == pytest.approx(_reference_ssim(ya, yb), abs=1e-9)
    assert ssim(a, b, crop_border=2) == pytest.approx(
        _reference_ssim(qa[2:-2, 2:-2], qb[2:-2, 2:-2]), abs=1e-9)


def test_ssim_falls_as_noise_grows_and_grey_images_work():
    a, _ = _pair(4)
    rng = np.random.default_rng(0)
    scores = [ssim(a, np.clip(a + s * rng.standard_normal(a.shape), 0, 1)) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]
    g = a[:, :, :1]
    assert psnr(g, g[:, :, 0]) == math.inf
    assert ssim(g, np.clip(g + 0.1, 0, 1)) < 1


def test_mismatched_or_tiny_inputs_raise():
    a, _ = _pair()
    with pytest.raises(ValueError):
        psnr(a, a[:-1])
    with pytest.raises(ValueError):
        ssim(a[:8, :8], a[:8, :8])
