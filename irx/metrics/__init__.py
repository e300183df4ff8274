"""Image quality metrics with the conventions of BasicSR / SwinIR papers.

- Images are quantised to uint8 first (float [0,1] inputs: clip, x*255, round), then scored in
  float64 on the 0-255 scale.
- PSNR = 10 log10(255^2 / MSE); identical images give inf.
- Y channel = BT.601 "MATLAB" luma, 16 + 65.481 R + 128.553 G + 24.966 B with RGB in [0,1]
  (so Y is in [16, 235] on the 0-255 scale, not rounded). OpenCV's YCrCb is a different
  formula and gives different numbers. A 1-channel image is scored as it is.
- SSIM: 11x11 Gaussian window (sigma 1.5), C1 = (0.01*255)^2, C2 = (0.03*255)^2, local
  statistics by cv2.filter2D then the 5-pixel margin dropped ('valid' window positions only),
  mean of the SSIM map per channel, then the mean over channels.
- crop_border removes that many pixels from every side first (papers use the SR scale).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["psnr", "quantize", "rgb_to_y", "ssim"]


def quantize(img: np.ndarray) -> np.ndarray:
    """HWC (or HW) image -> float64 HWC on the 0-255 scale with integer values."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected an HWC image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"integer images must be uint8, got {arr.dtype}")
    return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """RGB image on the 0-255 scale (float or uint8) -> H x W x 1 BT.601 luma on the 0-255 scale.

    A 1-channel image is returned unchanged (as float64).
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] == 1:
        return x
    if x.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got {x.shape[2]} channels")
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    return y[:, :, None]


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    x, y = quantize(a), quantize(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if crop_border > 0:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if x.size == 0:
        raise ValueError("nothing left to compare after cropping the border")
    if y_channel:
        x, y = rgb_to_y(x), rgb_to_y(y)
    return x, y


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images). Inputs: uint8 or float [0,1]."""
    x, y = _prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def local_mean(img: np.ndarray) -> np.ndarray:
        return cv2.filter2D(img, -1, window)[5:-5, 5:-5]

    mx, my = local_mean(x), local_mean(y)
    vx = local_mean(x * x) - mx**2
    vy = local_mean(y * y) - my**2
    cov = local_mean(x * y) - mx * my
    num = (2 * mx * my + _C1) * (2 * cov + _C2)
    den = (mx**2 + my**2 + _C1) * (vx + vy + _C2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity (1 for identical images). Inputs: uint8 or float [0,1], HWC."""
    x, y = _prepare(a, b, crop_border, y_channel)
    if min(x.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {x.shape[:2]}")
    return float(np.mean([_ssim_channel(np.ascontiguousarray(x[..., c]),
                                        np.ascontiguousarray(y[..., c]))
                          for c in range(x.shape[2])]))
