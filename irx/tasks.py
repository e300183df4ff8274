"""The restoration tasks irx knows: one TaskSpec per task, declared once, read by the CLI, the zoo,
training, degradation and evaluation.

A task's spec holds its name and help, whether it changes the image size (`has_scale`), its
synthetic degradation (parameter types, the training family, the evaluation levels, fallbacks for
omitted parameters, the named robustness variants) and the classical baselines it is scored
against. Adding a task is one TaskSpec here plus its degradation function in irx.degrade; the
test tests/test_tasks.py checks that every table of the codebase agrees with this one.

Degradation parameters: a fixed value, or a range drawn anew per call (a 2-tuple of numbers is a
uniform range, a tuple of strings a uniform choice; a repeated choice weights it). Training draws
from a family, not one pipeline, so a model does not learn one kernel or one noise. Held out of
the training families on purpose, so the robustness evaluation shows over-fitting: Lanczos
downscaling, straight motion streaks, correlated noise, re-saved JPEGs, additive rain, thick
tinted haze and very steep darkening curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from irx.errors import UsageError

__all__ = ["TASKS", "TASK_HELP", "TaskSpec", "Variant", "get_task", "has_scale", "task_specs"]


@dataclass(frozen=True)
class Variant:
    """One fixed case of the robustness evaluation: parameters over the task's eval_params, and
    whether the training family covers it (held_out=False) or not."""

    name: str
    params: dict[str, Any]
    held_out: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """Everything irx knows about one task (see the module docstring)."""

    name: str
    help: str
    param_types: dict[str, type]
    train_params: dict[str, Any]
    eval_params: dict[str, Any]
    fallbacks: dict[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    baselines: tuple[str, ...] = ("input",)
    # The output is `scale` times the input: models, zoo records and metrics carry a scale
    # (SR crops `scale` border pixels, as BasicSR does).
    has_scale: bool = False
    # The image format written when the user names none (None: the input's own). dejpeg writes a
    # lossless one: JPEG again would add back the artefacts it removed.
    output_format: str | None = None


_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="denoise",
        help="Remove sensor and Gaussian noise.",
        param_types={"sigma": float, "noise": str, "peak": float, "jpeg": float, "quality": int},
        train_params={
            "sigma": (5.0, 50.0),
            "noise": ("gaussian", "gaussian", "poisson_gaussian"),
            "peak": (30.0, 400.0),
            "jpeg": 0.25,
            "quality": (60, 95),
        },
        eval_params={"sigma": 25.0, "noise": "gaussian"},
        fallbacks={"noise": "gaussian", "peak": 100.0, "quality": 80},
        variants=(
            Variant("gaussian s15", {"sigma": 15.0}),
            Variant("gaussian s25", {"sigma": 25.0}),
            Variant("gaussian s50", {"sigma": 50.0}),
            Variant("poisson-gaussian", {"noise": "poisson_gaussian", "peak": 60.0, "sigma": 8.0}),
            Variant("s25 + jpeg q80", {"sigma": 25.0, "jpeg": 1.0, "quality": 80}),
            Variant("correlated s25", {"noise": "correlated", "sigma": 25.0}, held_out=True),
        ),
        baselines=("input", "nlm", "bm3d"),
    ),
    TaskSpec(
        name="deblur",
        help="Remove motion and defocus blur.",
        param_types={"kind": str, "size": int, "radius": float, "spread": float, "sigma": float},
        train_params={
            "kind": ("motion", "motion", "defocus", "gaussian"),
            "size": (7, 31),
            "radius": (1.0, 5.0),
            "spread": (0.8, 3.0),
            "sigma": (0.0, 2.0),
        },
        eval_params={"kind": "motion", "size": 17, "sigma": 0.0},
        fallbacks={"kind": "motion", "size": 21, "radius": 3.0, "spread": 1.5, "sigma": 0.0},
        variants=(
            Variant("motion 7", {"size": 7}),
            Variant("motion 11", {"size": 11}),
            Variant("motion 17", {"size": 17}),
            Variant("defocus r3", {"kind": "defocus", "radius": 3.0}),
            Variant("gaussian 2", {"kind": "gaussian", "spread": 2.0}),
            Variant("linear 13", {"kind": "linear", "size": 13}, held_out=True),
        ),
        baselines=("input", "unsharp", "wiener"),
    ),
    TaskSpec(
        name="derain",
        help="Remove rain streaks.",
        param_types={
            "density": float,
            "length": float,
            "angle": float,
            "width": float,
            "intensity": float,
            "blend": str,
        },
        train_params={
            "density": (0.0005, 0.005),
            "length": (10.0, 40.0),
            "angle": (-30.0, 30.0),
            "width": (0.3, 1.2),
            "intensity": (0.4, 1.0),
            "blend": "screen",
        },
        eval_params={
            "density": 0.002,
            "length": 25.0,
            "angle": 15.0,
            "width": 0.6,
            "intensity": 0.7,
            "blend": "screen",
        },
        fallbacks={"blend": "screen"},
        variants=(
            Variant("screen", {}),
            Variant("additive", {"blend": "additive", "intensity": 0.5}, held_out=True),
        ),
        baselines=("input", "median", "guided"),
    ),
    TaskSpec(
        name="dehaze",
        help="Remove haze and fog.",
        param_types={"beta": float, "airlight": float, "tint": float, "context": float},
        train_params={"beta": (0.5, 2.5), "airlight": (0.7, 1.0), "tint": (0.0, 0.1)},
        eval_params={"beta": 1.5, "airlight": 0.9},
        fallbacks={"context": 1.0},
        variants=(
            Variant("beta 1.5", {}),
            Variant("beta 1.0 tinted", {"beta": 1.0, "tint": 0.08}),
            Variant("beta 2.8 tinted", {"beta": 2.8, "tint": 0.15}, held_out=True),
        ),
        baselines=("input", "dcp"),
    ),
    TaskSpec(
        name="upscale",
        help="Super-resolve by --scale (2 or 4).",
        has_scale=True,
        param_types={"scale": int, "kernel": str, "preblur": float, "jpeg": float, "quality": int},
        train_params={
            "scale": 2,
            "kernel": ("bicubic", "area", "bilinear"),
            "preblur": (0.0, 0.6),
            "jpeg": 0.3,
            "quality": (60, 95),
        },
        eval_params={"scale": 2, "kernel": "bicubic"},
        fallbacks={"kernel": "bicubic", "quality": 80},
        variants=(
            Variant("bicubic", {"kernel": "bicubic"}),
            Variant("area", {"kernel": "area"}),
            Variant("bilinear", {"kernel": "bilinear"}),
            Variant("bicubic + jpeg q75", {"kernel": "bicubic", "jpeg": 1.0, "quality": 75}),
            Variant("lanczos", {"kernel": "lanczos"}, held_out=True),
        ),
        baselines=("input", "bicubic"),
    ),
    TaskSpec(
        name="dejpeg",
        help="Remove JPEG compression artefacts.",
        param_types={"quality": int, "subsampling": str, "prior": int},
        train_params={"quality": (10, 60), "subsampling": ("420", "420", "422", "444")},
        eval_params={"quality": 20},
        fallbacks={"subsampling": "420"},
        variants=(
            Variant("q20 4:2:0", {"quality": 20, "subsampling": "420"}),
            Variant("q20 4:4:4", {"quality": 20, "subsampling": "444"}),
            Variant("q40 4:2:2", {"quality": 40, "subsampling": "422"}),
            Variant("q20 re-saved from q70", {"quality": 20, "prior": 70}, held_out=True),
        ),
        baselines=("input",),
        output_format="png",
    ),
    TaskSpec(
        name="lowlight",
        help="Brighten under-exposed photos.",
        param_types={
            "exposure": float,
            "gamma": float,
            "peak": float,
            "sigma": float,
            "tint": float,
        },
        train_params={
            "exposure": (0.05, 0.35),
            "gamma": (1.0, 2.2),
            "peak": (200.0, 3000.0),
            "sigma": (0.0, 4.0),
            "tint": (0.0, 0.3),
        },
        eval_params={"exposure": 0.15, "gamma": 1.2, "peak": 1000.0, "sigma": 2.0},
        fallbacks={},
        variants=(
            Variant("exposure 0.15", {}),
            Variant("warm light", {"tint": 0.2}),
            Variant("gamma 2.0", {"gamma": 2.0, "exposure": 0.2}),
            # Beyond the family's steepest curve (2.2) and darkest exposure: extrapolation shows as a number.
            Variant("gamma 2.6, exposure 0.04", {"gamma": 2.6, "exposure": 0.04}, held_out=True),
        ),
        baselines=("input", "clahe", "gamma"),
    ),
)

_BY_NAME: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}

TASKS: tuple[str, ...] = tuple(_BY_NAME)
TASK_HELP: dict[str, str] = {spec.name: spec.help for spec in _SPECS}


def task_specs() -> tuple[TaskSpec, ...]:
    """Every task, in the order the CLI lists them."""
    return _SPECS


def has_scale(name: str) -> bool:
    """Whether task `name` changes the image size (False for names that are not restoration tasks)."""
    spec = _BY_NAME.get(name)
    return spec is not None and spec.has_scale


def get_task(name: str) -> TaskSpec:
    """The spec of task `name`; a UsageError that lists the tasks if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None
