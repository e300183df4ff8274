"""Classical (non-learned) restoration baselines, computed in the same run as a model.

    out = baseline("nlm", "denoise", noisy, sigma=25)

Inputs and outputs are float32 HWC images in [0,1] (RGB or 1 channel). What each one does:

- input (all tasks): the degraded image itself; for upscale, its MATLAB-style bicubic
  enlargement (the same as "bicubic"). For dejpeg this is the decoded JPEG.
- nlm (denoise): OpenCV fast non-local means (7x7 patches, 21x21 search). OpenCV's h is a
  filter strength in 0-255 units; h = NLM_H_PER_SIGMA * sigma for both the luma and colour
  terms was the best factor on training photos at sigma 15/25/50 (see docs/evaluation.md).
- bm3d (denoise): the `bm3d` package (bm3d_rgb, opponent colour space; needs `pip install bm3d`).
  When sigma is not given (pairs mode, Poisson-Gaussian noise) it is estimated from the image
  (Immerkaer's method, see estimate_sigma).
- bicubic (upscale): MATLAB-style bicubic enlargement by `scale`.
- dcp (dehaze): dark channel prior (He et al. 2009) with the transmission refined by a guided
  filter (He et al. 2010): 15x15 dark-channel patches, omega 0.95, airlight = mean colour of
  the brightest 0.1% of the dark channel, t >= 0.1, guided filter radius min(H,W)/10, eps 1e-3.
- clahe (lowlight): CLAHE on the L channel of CIELAB (clip limit 2, 8x8 tiles).
- gamma (lowlight): global gamma chosen so the mean luma maps to 0.45.
- unsharp (deblur): unsharp masking, x + 1.0 * (x - GaussianBlur(x, sigma 2)). Blind.
- wiener (deblur): Wiener deconvolution with the true blur kernel (`kernel=`, which synthetic
  evaluation knows; noise-to-signal ratio 0.005). Non-blind, so an upper reference rather than
  a fair competitor for a blind model.
- median (derain): 5x5 median filter; removes thin streaks, also fine detail.
- guided (derain): self-guided filter per channel (radius 3, eps 0.02): an edge-preserving
  smoother, included as the classic filter-based reference.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .degrade._util import as_hwc, per_channel, restore_ndim, to_uint8
from .degrade.resize import upsample
from .errors import IrxError, UsageError
from .tasks import get_task, task_specs

__all__ = ["BASELINES", "BaselineUnavailable", "baseline", "estimate_sigma", "guided_filter"]

# Baselines that make sense for each task, in the order "all" runs them (declared in irx.tasks).
BASELINES: dict[str, tuple[str, ...]] = {t.name: t.baselines for t in task_specs()}

NLM_H_PER_SIGMA = 0.6


class BaselineUnavailable(IrxError):
    """A baseline that cannot run here (missing package or missing information)."""


def estimate_sigma(img: np.ndarray) -> float:
    """Noise std in 0-255 units by Immerkaer's fast method (1996), averaged over channels.

    Convolves with the difference of two Laplacians (which cancels smooth image content) and
    takes sqrt(pi/2) * mean |response| / 6.
    """
    x, _ = as_hwc(img)
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    sigmas = []
    for c in range(x.shape[2]):
        resp = cv2.filter2D(x[:, :, c] * 255.0, cv2.CV_32F, mask)[1:-1, 1:-1]
        sigmas.append(math.sqrt(math.pi / 2) * float(np.mean(np.abs(resp))) / 6.0)
    return float(np.mean(sigmas))


def _sigma(x: np.ndarray, params: dict[str, Any]) -> float:
    sigma = params.get("sigma")
    if sigma is None or params.get("noise", "gaussian") != "gaussian" or _is_range(sigma):
        return estimate_sigma(x)
    return float(sigma)


def _is_range(value: Any) -> bool:
    return isinstance(value, (tuple, list))


def _nlm(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    h = NLM_H_PER_SIGMA * _sigma(x, params)
    u8 = to_uint8(x)
    if x.shape[2] == 3:
        out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
    else:
        out = cv2.fastNlMeansDenoising(u8[:, :, 0], None, h, 7, 21)[:, :, None]
    return out.astype(np.float32) / 255.0


def _bm3d(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    try:
        import bm3d
    except ImportError as exc:
        raise BaselineUnavailable(
            "the bm3d baseline needs the bm3d package: pip install bm3d"
        ) from exc
    sigma = _sigma(x, params) / 255.0
    if x.shape[2] == 3:
        out = bm3d.bm3d_rgb(x.astype(np.float64), sigma)
    else:
        out = bm3d.bm3d(x[:, :, 0].astype(np.float64), sigma)[:, :, None]
    return np.asarray(out, np.float32).reshape(x.shape)


def _bicubic(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    scale = params.get("scale")
    if not scale:
        raise UsageError("the bicubic baseline needs scale=")
    return upsample(x, int(scale), params.get("out_hw"))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a 2-D guide and 2-D source (box filters, O(N))."""
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    g, p = guide.astype(np.float32), src.astype(np.float32)
    mg, mp = mean(g), mean(p)
    var = mean(g * g) - mg * mg
    cov = mean(g * p) - mg * mp
    a = cov / (var + eps)
    b = mp - a * mg
    return mean(a) * g + mean(b)


def _dark_channel(x: np.ndarray, patch: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(np.ascontiguousarray(x.min(axis=2)), kernel, borderType=cv2.BORDER_REFLECT)


def _dcp(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    patch, omega, t0 = 15, 0.95, 0.1
    h, w = x.shape[:2]
    dark = _dark_channel(x, patch)
    n = max(1, round(0.001 * h * w))
    brightest = np.argsort(dark.ravel())[-n:]
    airlight = np.maximum(x.reshape(-1, x.shape[2])[brightest].mean(axis=0), 1e-3)
    t = 1.0 - omega * _dark_channel(x / airlight, patch)
    guide = x.mean(axis=2)
    t = guided_filter(guide, t, max(4, min(h, w) // 10), 1e-3)
    t = np.maximum(t, t0)[:, :, None]
    return (x - airlight) / t + airlight


def _clahe(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    u8 = to_uint8(x)
    if x.shape[2] == 1:
        return (clahe.apply(u8[:, :, 0]).astype(np.float32) / 255.0)[:, :, None]
    lab = cv2.cvtColor(u8, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


def _gamma(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    luma = x.mean(axis=2) if x.shape[2] == 1 else x @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = float(np.clip(luma.mean(), 1e-4, 0.99))
    return np.power(np.clip(x, 0.0, 1.0), math.log(0.45) / math.log(mean))


def _unsharp(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    blurred = per_channel(lambda c: cv2.GaussianBlur(c, (0, 0), 2.0), x)
    return x + 1.0 * (x - blurred)


def _wiener(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    kernel = params.get("kernel")
    if kernel is None:
        raise BaselineUnavailable("the wiener baseline needs the blur kernel (synthetic "
                                  "evaluation only)")
    k = np.asarray(kernel, np.float64)
    nsr = float(params.get("nsr", 0.005))
    pad = max(k.shape)
    h, w = x.shape[:2]
    # Reflect-pad so the FFT's circular boundary falls outside the image.
    padded = cv2.copyMakeBorder(x, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    if padded.ndim == 2:
        padded = padded[:, :, None]
    otf_src = np.zeros(padded.shape[:2])
    otf_src[: k.shape[0], : k.shape[1]] = k
    # Move the kernel centre to (0, 0) so the filter does not shift the image.
    otf_src = np.roll(otf_src, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))
    otf = np.fft.fft2(otf_src)
    filt = np.conj(otf) / (np.abs(otf) ** 2 + nsr)
    out = np.stack([np.real(np.fft.ifft2(np.fft.fft2(padded[:, :, c]) * filt))
                    for c in range(padded.shape[2])], axis=2)
    return out[pad:pad + h, pad:pad + w].astype(np.float32)


def _median(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    u8 = to_uint8(x)
    out = cv2.medianBlur(u8 if x.shape[2] == 3 else u8[:, :, 0], 5)
    return out.reshape(x.shape).astype(np.float32) / 255.0


def _guided(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    return per_channel(lambda c: guided_filter(c, c, 3, 0.02), x)


_FUNCS = {
    "nlm": _nlm, "bm3d": _bm3d, "bicubic": _bicubic, "dcp": _dcp, "clahe": _clahe,
    "gamma": _gamma, "unsharp": _unsharp, "wiener": _wiener, "median": _median,
    "guided": _guided,
}


def baseline(name: str, task: str, degraded: np.ndarray, **params: Any) -> np.ndarray:
    """Restore `degraded` with the classical method `name` for `task`; see the module doc.

    params: sigma (denoise, 0-255), scale and optionally out_hw (upscale), kernel (wiener).
    """
    spec = get_task(task)
    if name not in spec.baselines:
        raise UsageError(f"no baseline {name!r} for {task}; choose from "
                         f"{', '.join(spec.baselines)}")
    x, was_2d = as_hwc(degraded)
    if name == "input":
        # The degraded input at the output's size: bicubic-enlarged when the task changes size.
        out = _bicubic(x, params) if spec.has_scale else x.copy()
    else:
        out = _FUNCS[name](x, params)
    return restore_ndim(np.clip(out, 0.0, 1.0).astype(np.float32), was_2d)
