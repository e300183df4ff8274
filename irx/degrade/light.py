"""Low-light synthesis: darken (gamma then exposure scale), then sensor noise."""

from __future__ import annotations

import numpy as np

from .noise import poisson_gaussian_noise


def darken(
    img: np.ndarray,
    exposure: float,
    gamma: float,
    peak: float,
    sigma: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """exposure * img**gamma, then Poisson-Gaussian noise (peak photons at 1.0, read sigma/255).

    gamma > 1 darkens mid-tones more than highlights (a crude sRGB -> linear step); with
    gamma = 1 the mean falls by exactly the exposure factor before noise.
    """
    dark = exposure * np.power(np.clip(img, 0.0, 1.0), gamma)
    return poisson_gaussian_noise(dark.astype(np.float32), peak, sigma, rng)
