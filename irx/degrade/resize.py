"""Downsampling for super-resolution: MATLAB-style bicubic, area, bilinear and Lanczos.

`imresize` reimplements the algorithm of MATLAB's imresize (bicubic, a = -0.5, antialiasing
when shrinking, symmetric border padding), which produced the LR images of DIV2K, Set5,
Set14, Urban100 and the other SR benchmarks. It works on floats and does not round; PIL's
BICUBIC resize of a float ('F' mode) image uses the same kernel and pixel centres and agrees
with it away from the border, while cv2.INTER_CUBIC does not antialias (a = -0.75).

Real low-resolution photos were not all made with MATLAB's kernel: phones, browsers and web
pipelines shrink with area averaging, bilinear or Lanczos filters. "bilinear" and "lanczos"
use Pillow's antialiased filters (support widened by the shrink factor, as Pillow's and most
web resizers do), applied to float ('F' mode) channels so nothing is rounded.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from ._util import per_channel


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'cubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _weights(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense (out_len x in_len) resampling matrix for one axis, as MATLAB's imresize builds it."""
    width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)  # 1-based output pixel indices
    u = x / scale + 0.5 * (1 - 1 / scale)  # their centres in 1-based input coordinates
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    # Symmetric padding: index 0 maps to 1, -1 to 2, in_len+1 to in_len, ... (1-based).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), cols.ravel()), w.ravel())
    return mat


def imresize(img: np.ndarray, scale: float, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB-style bicubic resize of an HWC float image by `scale` (e.g. 1/4 or 2).

    Output size is ceil(H*scale) x ceil(W*scale) unless `out_hw` is given. Height is
    resized first, then width (MATLAB's order for equal factors).
    """
    h, w = img.shape[:2]
    oh, ow = out_hw or (math.ceil(h * scale), math.ceil(w * scale))
    rows = _weights(h, oh, scale)
    cols = _weights(w, ow, scale)
    c = img.shape[2]
    # Two dense matrix products (BLAS): along the height, then along the width.
    out = rows @ img.astype(np.float64).reshape(h, w * c)
    out = out.reshape(oh, w, c).transpose(0, 2, 1) @ cols.T
    return np.ascontiguousarray(out.transpose(0, 2, 1)).astype(np.float32)


def downsample(img: np.ndarray, scale: int, kernel: str = "bicubic") -> np.ndarray:
    """Shrink an HWC image by an integer factor; the input is cropped to a multiple of scale.

    kernel: "bicubic" (MATLAB imresize, see module doc), "area" (cv2.INTER_AREA: the mean of
    each scale x scale block), "bilinear" or "lanczos" (Pillow's antialiased filters).
    """
    h, w = img.shape[:2]
    lh, lw = h // scale, w // scale
    img = img[: lh * scale, : lw * scale]
    if kernel == "bicubic":
        return imresize(img, 1.0 / scale, (lh, lw))
    if kernel == "area":
        return per_channel(lambda ch: cv2.resize(ch, (lw, lh), interpolation=cv2.INTER_AREA), img)
    if kernel in _PIL_FILTERS:
        flt = _PIL_FILTERS[kernel]
        return per_channel(
            lambda ch: np.asarray(Image.fromarray(ch.astype(np.float32, copy=False)).resize((lw, lh), flt)), img
        )
    raise ValueError(f"unknown downsampling kernel {kernel!r}; use one of {', '.join(KERNELS)}")


_PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
KERNELS = ("bicubic", "area", "bilinear", "lanczos")


def upsample(img: np.ndarray, scale: int, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB-style bicubic enlargement by an integer factor (the classic SR baseline)."""
    h, w = img.shape[:2]
    return imresize(img, float(scale), out_hw or (h * scale, w * scale))
