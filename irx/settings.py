"""One frozen settings object for a restore run: CLI flag > config file > default, resolved once.

    settings = RestoreSettings.resolve(device="cuda", tile="512")          # from Python
    summary = irx.restore_files(["photos/"], task="denoise", settings=settings)

`resolve` reads the user's config file (irx.zoo.config) once, so no other layer re-reads it; each layer
then takes what it needs: `engine_kwargs()` for irx.engine.Engine, `pipeline_options()` for the image
pipeline, `video_options()` for video (which now gets --batch-size too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from irx.errors import UsageError

ALPHA_MODES = ("model", "resize")

if TYPE_CHECKING:
    from irx.media.video import VideoOptions
    from irx.pipeline import PipelineOptions
    from irx.zoo.config import UserConfig


@dataclass(frozen=True)
class RestoreSettings:
    """Everything a restore run can be told, with irx's defaults."""

    # engine
    device: str = "auto"
    precision: str = "auto"
    tile: str | int = "auto"
    tile_overlap: int = 16
    batch_size: str | int = "auto"
    channels_last: bool = False
    compile: bool = False
    # model and output size
    scale: float | None = None  # output scale (fractional allowed); the model runs at its own and is resized
    width: int | None = None  # output width and/or height in pixels (one alone keeps the aspect ratio)
    height: int | None = None
    offline: bool = False
    fast: bool = False  # the task's smallest bundled model instead of its default (CPU-sized, offline)
    trust_remote_code: bool = False
    # inputs and outputs
    recursive: bool = False
    skip_existing: bool = True
    out_format: str | None = None
    quality: int | None = None
    strict: bool = False
    # what is done with the model's output
    strength: float = 1.0  # 0: the input, 1: the model's output; between, a blend (or the model's own level)
    alpha: str = "model"  # upscaling: "model" restores alpha with the model, "resize" only resizes it
    faces: bool = False  # restore the faces of the input and paste them into the output (irx.faces)
    face_model: str | None = None  # zoo name or file; None: irx.faces' default
    compare: bool = False  # a before/after image beside each output (irx.media.compare)
    # video
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    keep_audio: bool = True
    resume: bool = False
    # where the work runs: "local" (this process, one engine per device) or "ray" (a Ray cluster, irx.ray)
    engine: str = "local"
    ray_address: str | None = None  # None: a local Ray cluster that starts and stops with the run
    workers: int | None = None  # Ray restore workers (one model each); None: one per GPU, else per 2 CPUs

    @classmethod
    def resolve(cls, user_config: UserConfig | None = None, **given: Any) -> RestoreSettings:
        """Settings from explicit values (None = not given); device and precision left at "auto" take the
        config file's values. `user_config` defaults to the user's config file."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UsageError(f"unknown restore setting {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if user_config is None:
            from irx.zoo.config import load_user_config  # noqa: PLC0415 - reads a file, only when asked

            user_config = load_user_config()
        values = {k: v for k, v in given.items() if v is not None}
        if isinstance(values.get("scale"), float) and values["scale"].is_integer():
            values["scale"] = int(values["scale"])  # --scale 2.0 is x2, and prints as x2
        for key in ("device", "precision"):
            if values.get(key, "auto") == "auto" and getattr(user_config, key, None):
                values[key] = getattr(user_config, key)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check every value before any file is touched (UsageError, exit code 2)."""
        from irx.engine import validate_engine_options  # noqa: PLC0415 - torch only when work starts

        if self.scale is not None and not (self.scale > 0 and math.isfinite(self.scale)):
            raise UsageError(f"scale must be a positive number, not {self.scale}", param="scale")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 pixel, not {value}", param=name)
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, not {self.strength:g}", param="strength")
        if self.face_model is not None and not self.faces:
            raise UsageError("face_model needs faces (it chooses the model that restores them)", param=("face_model", "faces"))
        if self.alpha not in ALPHA_MODES:
            raise UsageError(f"alpha must be one of {', '.join(ALPHA_MODES)}, not {self.alpha!r}", param="alpha")
        if self.out_format is not None:
            from irx.media.formats import require  # noqa: PLC0415
            from irx.media.image_io import _normalise_format  # noqa: PLC0415

            require(_normalise_format(self.out_format))  # a missing format library stops before any work
        if self.engine not in ("local", "ray"):
            raise UsageError(f"unknown engine {self.engine!r}; use local or ray", param="engine")
        if self.workers is not None and self.workers < 1:
            raise UsageError("workers must be at least 1", param="workers")
        if self.engine == "ray":  # what the Ray workers do not do yet: said, not silently dropped
            for name in ("faces", "compare"):
                if getattr(self, name):
                    raise UsageError(f"{name} is not available with engine ray yet; use engine local", param=(name, "engine"))
        validate_engine_options(tile=self.tile, batch_size=self.batch_size, precision=self.precision)

    def with_(self, **changes: Any) -> RestoreSettings:
        return replace(self, **changes)

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of irx.engine.Engine (the device is chosen per engine)."""
        return {"precision": self.precision, "tile": self.tile, "tile_overlap": self.tile_overlap,
                "batch_size": self.batch_size, "channels_last": self.channels_last, "compile": self.compile}

    def video_options(self) -> VideoOptions:
        from irx.media.video import VideoOptions  # noqa: PLC0415 - PyAV only for videos

        batch = {"batch_size": int(self.batch_size)} if str(self.batch_size).isdigit() else {}
        return VideoOptions(codec=self.codec, crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt,
                            keep_audio=self.keep_audio, resume=self.resume, overwrite=not self.skip_existing,
                            **batch)

    def pipeline_options(self, task: str, video: VideoOptions | None = None) -> PipelineOptions:
        from irx.pipeline import PipelineOptions  # noqa: PLC0415

        return PipelineOptions(out_scale=self.scale, out_width=self.width, out_height=self.height,
                               out_format=self.out_format, quality=self.quality,
                               overwrite=not self.skip_existing, video=video, task=task, strict=self.strict,
                               strength=self.strength, alpha=self.alpha, compare=self.compare)
