"""Noise models: Gaussian (AWGN), Poisson-Gaussian (shot + read noise) and correlated noise.

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


def correlated_noise(
    img: np.ndarray, sigma: float, rng: np.random.Generator, spread: float = 0.8
) -> np.ndarray:
    """img + Gaussian noise smoothed by a Gaussian of `spread` px and rescaled to std sigma/255.

    Demosaicing and in-camera processing spread sensor noise over neighbouring pixels, so a
    real photo's grain is coarser than independent per-pixel noise. Not clipped.
    """
    import cv2

    if sigma <= 0:
        return img.astype(np.float32, copy=True)
    white = rng.standard_normal(img.shape, dtype=np.float32)
    smooth = np.stack([cv2.GaussianBlur(white[:, :, c], (0, 0), spread)
                       for c in range(img.shape[2])], axis=2)
    smooth /= max(float(smooth.std()), 1e-6)
    return img.astype(np.float32) + smooth * np.float32(sigma / 255.0)
