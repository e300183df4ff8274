"""Low-light synthesis: darken (gamma then exposure scale), tint by the light's colour, then
sensor noise."""

from __future__ import annotations

import numpy as np

from .noise import poisson_gaussian_noise


def light_gains(tint: float, rng: np.random.Generator) -> np.ndarray:
    """Per-channel (R, G, B) gains of a light `tint` away from white: a random point between a
    warm (tungsten, sodium) and a cool (shade, moonlight) cast, green fixed at 1.

    tint 0 gives (1, 1, 1); tint 0.3 allows red or blue up to 30% above or below green.
    """
    if tint <= 0:
        return np.ones(3, np.float32)
    warmth = rng.uniform(-1.0, 1.0) * tint  # > 0 warm: more red, less blue
    return np.array([1.0 + warmth, 1.0, 1.0 - warmth], np.float32)


def darken(
    img: np.ndarray,
    exposure: float,
    gamma: float,
    peak: float,
    sigma: float,
    rng: np.random.Generator,
    tint: float = 0.0,
) -> np.ndarray:
    """exposure * img**gamma, times the light's gains (colour images, `tint` > 0), then
    Poisson-Gaussian noise (peak photons at 1.0, read sigma/255).

    gamma > 1 darkens mid-tones more than highlights (a crude sRGB -> linear step); with
    gamma = 1 and no tint the mean falls by exactly the exposure factor before noise.
    """
    dark = exposure * np.power(np.clip(img, 0.0, 1.0), gamma)
    if tint > 0 and dark.shape[2] == 3:
        dark = dark * light_gains(tint, rng)[None, None, :]
    return poisson_gaussian_noise(dark.astype(np.float32), peak, sigma, rng)
