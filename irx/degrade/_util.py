"""Small helpers shared by the degradation modules."""

from __future__ import annotations

import numpy as np


def as_hwc(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return (float32 HWC view of img, whether the input was 2-D HW)."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[:, :, None].astype(np.float32, copy=False), True
    if arr.ndim != 3:
        raise ValueError(f"expected an HWC or HW image, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False), False


def restore_ndim(img: np.ndarray, was_2d: bool) -> np.ndarray:
    return img[:, :, 0] if was_2d else img


def per_channel(fn, img: np.ndarray) -> np.ndarray:
    """Apply a 2-D function to each channel of an HWC image (OpenCV drops a size-1 channel axis)."""
    return np.stack([fn(np.ascontiguousarray(img[:, :, c])) for c in range(img.shape[2])], axis=2)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [0,1] -> uint8 by rounding, the way saved images are produced."""
    return np.clip(np.round(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
