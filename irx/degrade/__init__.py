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

- denoise: sigma, noise ("gaussian" | "poisson_gaussian" | "correlated": grain spread over
  neighbours, as after demosaicing), peak (photons at 1.0, for Poisson-Gaussian), jpeg and
  quality (with probability `jpeg` the noisy image is then saved as a JPEG of that quality)
- deblur: kind ("motion": a curved random camera path | "linear": a straight streak |
  "defocus": a disc | "gaussian"), size (motion length, px), radius (defocus disc, px),
  spread (Gaussian sigma, px), sigma (noise added after blurring)
- derain: density (drops per pixel), length (px), angle (degrees from vertical), width
  (Gaussian sigma across a streak, px), intensity, blend ("screen" | "additive")
- dehaze: beta (scattering coefficient; depth is in [0, 1]), airlight (A), tint (the airlight
  shifted toward blue or yellow-grey by up to this fraction), context (1: the depth ramp spans
  the image, as for a whole photo; k > 1: the image is a window of a scene k times larger,
  which is what a training crop of a hazy photo is)
- upscale: scale (2, 3, 4), kernel ("bicubic" = MATLAB imresize | "area" | "bilinear" |
  "lanczos", see irx.degrade.resize), preblur (Gaussian sigma in high-resolution px before
  shrinking: a soft lens or a resizer's own smoothing), jpeg and quality (as for denoise)
- dejpeg: quality (1-100, OpenCV libjpeg), subsampling ("420" | "422" | "444"), prior (0, or
  the quality of an earlier save: a JPEG re-saved as JPEG)
- lowlight: exposure, gamma, peak, sigma, tint (the light's colour, see irx.degrade.light)

Training draws from a family of these (DEFAULT_TRAIN_PARAMS), not one pipeline, so a model
does not learn one kernel or one noise. EVAL_VARIANTS names the fixed cases the robustness
evaluation scores, each marked as part of the training family or held out of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..tasks import Variant, get_task, task_specs
from ._util import as_hwc, restore_ndim
from .blur import convolve, disk_kernel, gaussian_kernel, linear_motion_kernel, motion_kernel
from .jpeg import SUBSAMPLING, jpeg_roundtrip
from .light import darken
from .noise import correlated_noise, gaussian_noise, poisson_gaussian_noise
from .resize import KERNELS, downsample
from .weather import add_haze, add_rain, airlight_colour, rain_layer, synthetic_depth

__all__ = [
    "DEFAULT_EVAL_PARAMS",
    "DEFAULT_TRAIN_PARAMS",
    "EVAL_VARIANTS",
    "PARAM_TYPES",
    "Degradation",
    "Variant",
    "make_degradation",
]

# The per-task tables, derived from irx.tasks (where each task is declared once).
DEFAULT_TRAIN_PARAMS: dict[str, dict[str, Any]] = {t.name: t.train_params for t in task_specs()}
DEFAULT_EVAL_PARAMS: dict[str, dict[str, Any]] = {t.name: t.eval_params for t in task_specs()}
EVAL_VARIANTS: dict[str, tuple[Variant, ...]] = {t.name: t.variants for t in task_specs()}
PARAM_TYPES: dict[str, dict[str, type]] = {t.name: t.param_types for t in task_specs()}
# Optional stages (pre-blur, JPEG after, tint, an earlier JPEG save) are off unless given.

_CHOICES = {"noise": ("gaussian", "poisson_gaussian", "correlated"),
            "kind": ("motion", "linear", "defocus", "gaussian"),
            "blend": ("screen", "additive"), "kernel": KERNELS,
            "subsampling": tuple(SUBSAMPLING)}

# For a fixed choice, the parameters it makes irrelevant (dropped, so reports list only what
# matters).
_IRRELEVANT: dict[tuple[str, str], tuple[str, ...]] = {
    ("noise", "gaussian"): ("peak",), ("noise", "correlated"): ("peak",),
    ("kind", "motion"): ("radius", "spread"), ("kind", "linear"): ("radius", "spread"),
    ("kind", "defocus"): ("size", "spread"), ("kind", "gaussian"): ("size", "radius"),
}


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


def _maybe_jpeg(x: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    """With probability p["jpeg"], save as a JPEG of p["quality"] (what most photos go through)."""
    chance = p.get("jpeg", 0.0)
    if chance <= 0 or (chance < 1 and rng.random() >= chance):
        return x
    return jpeg_roundtrip(np.clip(x, 0.0, 1.0), p["quality"])


def _denoise(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if p["noise"] == "gaussian":
        noisy = gaussian_noise(x, p["sigma"], rng)
    elif p["noise"] == "correlated":
        noisy = correlated_noise(x, p["sigma"], rng)
    else:
        noisy = poisson_gaussian_noise(x, p["peak"], p["sigma"], rng)
    return _maybe_jpeg(noisy, p, rng), {}


def _blur_kernel(p: dict, rng: np.random.Generator) -> np.ndarray:
    kind = p["kind"]
    if kind == "motion":
        return motion_kernel(p["size"], rng)
    if kind == "linear":
        return linear_motion_kernel(p["size"], rng)
    if kind == "gaussian":
        return gaussian_kernel(p["spread"])
    return disk_kernel(p["radius"])


def _deblur(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    k = _blur_kernel(p, rng)
    return gaussian_noise(convolve(x, k), p["sigma"], rng), {"kernel": k}


def _derain(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    rain = rain_layer(x.shape[0], x.shape[1], rng, p["density"], p["length"], p["angle"],
                      p["width"])
    return add_rain(x, rain, p["intensity"], p["blend"]), {}


def _dehaze(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    depth = synthetic_depth(x.shape[0], x.shape[1], rng, p["context"])
    airlight = airlight_colour(p["airlight"], p.get("tint", 0.0), x.shape[2], rng)
    return add_haze(x, depth, p["beta"], airlight), {}


def _upscale(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if p.get("preblur", 0.0) >= 0.1:
        x = convolve(x, gaussian_kernel(p["preblur"]))
    return _maybe_jpeg(downsample(x, p["scale"], p["kernel"]), p, rng), {}


def _dejpeg(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    sub = p.get("subsampling", "420")
    if p.get("prior", 0) > 0:
        x = jpeg_roundtrip(x, p["prior"], sub)
    return jpeg_roundtrip(x, p["quality"], sub), {}


def _lowlight(x: np.ndarray, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    return darken(x, p["exposure"], p["gamma"], p["peak"], p["sigma"], rng,
                  p.get("tint", 0.0)), {}


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
        if get_task(self.task).has_scale:
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
    spec = get_task(task)
    allowed = spec.param_types
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UsageError(
            f"{task} has no parameter {', '.join(unknown)}; it takes: {', '.join(allowed)}"
        )
    merged = {**spec.fallbacks, **spec.eval_params}
    merged.update({k: v for k, v in params.items() if v is not None})
    for name, choices in _CHOICES.items():
        if name in merged:
            given = merged[name] if _is_range(merged[name]) else [merged[name]]
            bad = [g for g in given if g not in choices]
            if bad:
                raise UsageError(f"{task}: {name} must be one of {', '.join(choices)}, "
                                 f"got {bad[0]!r}")
    for (name, choice), unused in _IRRELEVANT.items():
        if merged.get(name) == choice:
            for key in unused:
                merged.pop(key, None)
    # A JPEG stage that never runs makes its quality irrelevant too (dejpeg's quality is the task).
    if task != "dejpeg" and merged.get("jpeg", 0.0) == 0.0:
        if params.get("quality") is not None:
            raise UsageError(f"{task}: quality applies only with jpeg > 0 (the chance that the "
                             "degraded image is then saved as a JPEG)")
        merged.pop("quality", None)
    return Degradation(task, merged, clip=clip)
