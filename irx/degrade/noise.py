"""Noise models: Gaussian (AWGN) and Poisson-Gaussian (shot + read noise).

Sigmas are in 0-255 units, as papers quote them (sigma=25 means std 25/255 on [0,1] images).
"""

from __future__ import annotations

import numpy as np


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """img + N(0, (sigma/255)^2), independently per pixel and channel (not clipped)."""
    if sigma <= 0:
        return img.astype(np.float32, copy=True)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return img.astype(np.float32) + noise


def poisson_gaussian_noise(
    img: np.ndarray, peak: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson(img * peak) / peak + N(0, (sigma/255)^2) (not clipped).

    `peak` is the photon count of a full-scale (1.0) pixel, so the shot-noise variance at
    intensity x is x / peak: it grows with brightness, unlike Gaussian noise. peak <= 0
    disables the shot term.
    """
    x = np.clip(img.astype(np.float64), 0.0, None)
    if peak > 0:
        x = rng.poisson(x * peak) / peak
    return gaussian_noise(x.astype(np.float32), sigma, rng)
