"""Synthetic degradations, shared by training and evaluation (one implementation for both).

    deg = make_degradation("denoise", sigma=(5, 50))
    noisy = deg(clean, rng)                 # float32 HWC [0,1] in, float32 HWC out
    noisy, info = deg.degrade(clean, rng)   # info: the values drawn (and a blur kernel)

Every parameter is either a fixed value or a range drawn anew on each call: a 2-tuple/list of
numbers is a uniform range (inclusive integers for integer parameters), a tuple/list of strings
is a uniform choice. All randomness comes from the `rng` passed in, so a seed reproduces the
output exactly. Outputs are clipped to [0, 1] unless `clip=False` (SwinIR-style denoising
benchmarks add noise without clipping). For "upscale" the output is the low-resolution image
of floor(H/scale) x floor(W/scale); `deg.scale` is that factor (1 for every other task).

Sigmas are in 0-255 units. The parameters of each task:

- denoise: sigma, noise ("gaussian" | "poisson_gaussian"), peak (photons at 1.0, for
  Poisson-Gaussian)
- deblur: kind ("motion" | "defocus"), size (motion kernel size, odd), radius (defocus disk
  radius, px), sigma (noise added after blurring)
- derain: density (drops per pixel), length (px), angle (degrees from vertical), width
  (Gaussian sigma across a streak, px), intensity, blend ("screen" | "additive")
- dehaze: beta (scattering coefficient; depth is in [0, 1]), airlight (A), context (1: the
  depth ramp spans the image, as for a whole photo; k > 1: the image is a window of a scene k
  times larger, which is what a training crop of a hazy photo is)
- upscale: scale (2, 3, 4), kernel ("bicubic" = MATLAB imresize | "area")
- dejpeg: quality (1-100, OpenCV libjpeg, 4:2:0)
- lowlight: exposure, gamma, peak, sigma (see irx.degrade.light)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..tasks import TASKS
from ._util import as_hwc, restore_ndim
from .blur import convolve, disk_kernel, motion_kernel
from .jpeg import jpeg_roundtrip
from .light import darken
from .noise import gaussian_noise, poisson_gaussian_noise
from .resize import downsample
from .weather import add_haze, add_rain, rain_layer, synthetic_depth

__all__ = [
    "DEFAULT_EVAL_PARAMS",
    "DEFAULT_TRAIN_PARAMS",
    "PARAM_TYPES",
    "Degradation",
    "make_degradation",
]

# Ranges used to train the bundled models.
DEFAULT_TRAIN_PARAMS: dict[str, dict[str, Any]] = {
    "denoise": {"sigma": (5.0, 50.0), "noise": "gaussian"},
    "deblur": {"kind": ("motion", "defocus"), "size": (7, 31), "radius": (1.0, 5.0),
               "sigma": (0.0, 2.0)},
    "derain": {"density": (0.0005, 0.005), "length": (10.0, 40.0), "angle": (-30.0, 30.0),
               "width": (0.3, 1.2), "intensity": (0.4, 1.0), "blend": "screen"},
    "dehaze": {"beta": (0.5, 2.5), "airlight": (0.7, 1.0)},
    "upscale": {"scale": 2, "kernel": "bicubic"},
    "dejpeg": {"quality": (10, 60)},
    "lowlight": {"exposure": (0.05, 0.35), "gamma": (1.0, 1.6), "peak": (200.0, 3000.0),
                 "sigma": (0.0, 4.0)},
}

# Fixed levels for evaluation (paper conventions where there is one). The blur kernel, rain
# layer and depth map are still random, but the evaluation seeds them per image.
DEFAULT_EVAL_PARAMS: dict[str, dict[str, Any]] = {
    "denoise": {"sigma": 25.0, "noise": "gaussian"},
    "deblur": {"kind": "motion", "size": 17, "sigma": 0.0},
    "derain": {"density": 0.002, "length": 25.0, "angle": 15.0, "width": 0.6, "intensity": 0.7,
               "blend": "screen"},
    "dehaze": {"beta": 1.5, "airlight": 0.9},
    "upscale": {"scale": 2, "kernel": "bicubic"},
    "dejpeg": {"quality": 20},
    "lowlight": {"exposure": 0.15, "gamma": 1.2, "peak": 1000.0, "sigma": 2.0},
}

# Parameter name -> type, per task (also the list of accepted parameters). "clip" is common.
PARAM_TYPES: dict[str, dict[str, type]] = {
    "denoise": {"sigma": float, "noise": str, "peak": float},
    "deblur": {"kind": str, "size": int, "radius": float, "sigma": float},
    "derain": {"density": float, "length": float, "angle": float, "width": float,
               "intensity": float, "blend": str},
    "dehaze": {"beta": float, "airlight": float, "context": float},
    "upscale": {"scale": int, "kernel": str},
    "dejpeg": {"quality": int},
    "lowlight": {"exposure": float, "gamma": float, "peak": float, "sigma": float},
}

# Values used for parameters the caller leaves out.
_FALLBACK: dict[str, dict[str, Any]] = {
    "denoise": {"noise": "gaussian", "peak": 100.0},
    "deblur": {"kind": "motion", "size": 21, "radius": 3.0, "sigma": 0.0},
    "derain": {"blend": "screen"},
    "dehaze": {"context": 1.0},
    "upscale": {"kernel": "bicubic"},
}

_CHOICES = {"noise": ("gaussian", "poisson_gaussian"), "kind": ("motion", "defocus"),
            "blend": ("screen", "additive"), "kernel": ("bicubic", "area")}


def _is_range(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and not isinstance(value, str)


def _draw(name: str, value: Any, kind: type, rng: np.random.Generator) -> Any:
    """A concrete value: `value` itself, or one drawn from its range or choices."""
    if not _is_range(value):
        return kind(value)
    if kind is str:
        return str(value[int(rng.integers(len(value)))])
    if len(value) != 2:
        raise UsageError(f"parameter {name}: a range must be (low, high), got {value!r}")
    lo, hi = value
    if kind is int:
        return int(rng.integers(int(lo), int(hi) + 1))
    return float(rng.uniform(float(lo), float(hi)))


def _denoise(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if p["noise"] == "gaussian":
        return gaussian_noise(x, p["sigma"], rng), {}
    return poisson_gaussian_noise(x, p["peak"], p["sigma"], rng), {}


def _deblur(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    k = motion_kernel(p["size"], rng) if p["kind"] == "motion" else disk_kernel(p["radius"])
    return gaussian_noise(convolve(x, k), p["sigma"], rng), {"kernel": k}


def _derain(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    rain = rain_layer(x.shape[0], x.shape[1], rng, p["density"], p["length"], p["angle"],
                      p["width"])
    return add_rain(x, rain, p["intensity"], p["blend"]), {}


def _dehaze(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    depth = synthetic_depth(x.shape[0], x.shape[1], rng, p["context"])
    return add_haze(x, depth, p["beta"], p["airlight"]), {}


def _upscale(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    return downsample(x, p["scale"], p["kernel"]), {}


def _dejpeg(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    return jpeg_roundtrip(x, p["quality"]), {}


def _lowlight(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    return darken(x, p["exposure"], p["gamma"], p["peak"], p["sigma"], rng), {}


_APPLY: dict[str, Callable[[np.ndarray, dict, np.random.Generator], tuple[np.ndarray, dict]]] = {
    "denoise": _denoise, "deblur": _deblur, "derain": _derain, "dehaze": _dehaze,
    "upscale": _upscale, "dejpeg": _dejpeg, "lowlight": _lowlight,
}


@dataclass
class Degradation:
    """A seeded degradation: call it as deg(clean, rng). See the module docstring."""

    task: str
    params: dict[str, Any]
    clip: bool = True
    scale: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        if self.task == "upscale":
            s = self.params["scale"]
            if _is_range(s) or int(s) < 1:
                raise UsageError("upscale needs one integer scale (e.g. 2 or 4), not a range")
            self.scale = int(s)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw concrete values for every parameter (in a fixed order, so seeds reproduce)."""
        types = PARAM_TYPES[self.task]
        return {k: _draw(k, self.params[k], types[k], rng) for k in sorted(self.params)}

    def degrade(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Degrade `clean`; return (degraded, info) where info holds the drawn values."""
        x, was_2d = as_hwc(clean)
        values = self.sample(rng)
        out, extra = _APPLY[self.task](x, values, rng)
        if self.clip:
            out = np.clip(out, 0.0, 1.0)
        return restore_ndim(out.astype(np.float32, copy=False), was_2d), {**values, **extra}

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.degrade(clean, rng)[0]


def make_degradation(task: str, clip: bool = True, **params: Any) -> Degradation:
    """Build the degradation for `task`; unspecified parameters take DEFAULT_EVAL_PARAMS values
    (then built-in fallbacks), so make_degradation("denoise") is sigma-25 Gaussian noise."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    allowed = PARAM_TYPES[task]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UsageError(
            f"{task} has no parameter {', '.join(unknown)}; it takes: {', '.join(allowed)}"
        )
    merged = {**_FALLBACK.get(task, {}), **DEFAULT_EVAL_PARAMS[task]}
    merged.update({k: v for k, v in params.items() if v is not None})
    for name, choices in _CHOICES.items():
        if name in merged:
            given = merged[name] if _is_range(merged[name]) else [merged[name]]
            bad = [g for g in given if g not in choices]
            if bad:
                raise UsageError(f"{task}: {name} must be one of {', '.join(choices)}, "
                                 f"got {bad[0]!r}")
    # Drop parameters the fixed choices make irrelevant, so reports list only what matters.
    if merged.get("noise") == "gaussian":
        merged.pop("peak", None)
    if merged.get("kind") == "motion":
        merged.pop("radius", None)
    elif merged.get("kind") == "defocus":
        merged.pop("size", None)
    return Degradation(task, merged, clip=clip)
