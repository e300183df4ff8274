"""Blur kernels (random-trajectory and straight motion, defocus disk, Gaussian) and convolution.

Kernels are float32, odd-sized, non-negative and sum to 1. Convolution mirrors the border
(cv2.BORDER_REFLECT) so the blurred image has the input's size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ._util import per_channel


def motion_kernel(size: int, rng: np.random.Generator, steps: int | None = None) -> np.ndarray:
    """A motion-blur kernel from a random camera trajectory (size x size, sums to 1).

    The trajectory is a random walk on the direction of motion (each step turns by a Gaussian
    angle), so paths range from nearly straight to curved. It is centred on its mean (so the
    blur does not shift the image on average), scaled to span 50-100% of the kernel, and
    splatted with bilinear weights.
    """
    size = int(size)
    if size < 3:
        return np.ones((1, 1), np.float32)
    if size % 2 == 0:
        size += 1
    steps = steps or 8 * size
    theta0 = rng.uniform(0, 2 * math.pi)
    turn = rng.uniform(0.05, 0.4)  # how curvy this trajectory is
    theta = theta0 + np.cumsum(rng.normal(0.0, turn, steps))
    speed = rng.uniform(0.5, 1.5, steps)
    path = np.cumsum(np.stack([np.cos(theta), np.sin(theta)], axis=1) * speed[:, None], axis=0)
    path -= path.mean(axis=0)
    half = (size - 1) / 2
    extent = np.abs(path).max()
    if extent > 0:
        path *= half * rng.uniform(0.5, 1.0) / extent
    kernel = np.zeros((size, size), np.float64)
    pts = path + half
    base = np.floor(pts).astype(int)
    frac = pts - base
    for dx in (0, 1):
        for dy in (0, 1):
            w = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
            xi = np.minimum(base[:, 0] + dx, size - 1)
            yi = np.minimum(base[:, 1] + dy, size - 1)
            np.add.at(kernel, (yi, xi), w)
    return (kernel / kernel.sum()).astype(np.float32)


def linear_motion_kernel(length: int, rng: np.random.Generator) -> np.ndarray:
    """A straight motion streak `length` px long at a random angle (odd size, sums to 1).

    The uniform-velocity blur of a camera panning or a subject crossing the frame; drawn
    anti-aliased at 8x and reduced, so lengths and angles are sub-pixel exact.
    """
    from .weather import line_kernel  # the same anti-aliased line the rain streaks use

    length = int(length)
    if length < 2:
        return np.ones((1, 1), np.float32)
    k = line_kernel(float(length), float(rng.uniform(0.0, 180.0))).astype(np.float64)
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """An isotropic Gaussian blur kernel (radius 3 sigma, sums to 1): slight optical softness."""
    if sigma < 0.1:
        return np.ones((1, 1), np.float32)
    g = cv2.getGaussianKernel(2 * math.ceil(3 * sigma) + 1, sigma)
    return (g @ g.T).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """A defocus (pillbox) kernel of the given radius in pixels, anti-aliased, sums to 1."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    half = math.ceil(radius)
    sub = 8  # supersampling per pixel for the anti-aliased edge
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    grid = np.arange(-half, half + 1)
    fine = (grid[:, None] + offsets[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
    n = 2 * half + 1
    cover = inside.reshape(n, sub, n, sub).mean(axis=(1, 3))
    return (cover / cover.sum()).astype(np.float32)


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True convolution (kernel flipped; cv2.filter2D correlates) with reflected borders."""
    k = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    return per_channel(
        lambda ch: cv2.filter2D(ch, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT), img
    )
