"""Training recipes: a TOML file read into validated dataclasses.

A recipe has five tables: [model], [data], [degradation], [train], [output]. Unknown tables or
keys are refused with a UsageError that names them, so a typo never silently falls back to a
default. Relative data paths are resolved against the data root (the `data_root` key, the
IRX_DATA_ROOT environment variable, or the --data-root option, in increasing priority); relative
output paths against the current directory (run from the repository root).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from irx.errors import UsageError
from irx.tasks import TASKS, get_task

DATA_ROOT_ENV = "IRX_DATA_ROOT"
RECIPES_DIR = Path(__file__).with_name("configs")


@dataclass
class ModelConfig:
    arch: str = "laformer"
    variant: str = "tiny"
    scale: int = 1
    in_chans: int = 3
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainDir:
    """One training folder; `downscale` < 1 shrinks its images once at load (compressed sources)."""

    path: Path
    downscale: float = 1.0


@dataclass
class DataConfig:
    train_dirs: list[TrainDir] = field(default_factory=list)
    data_root: str = "../shared/data/photos/train"
    val_dir: Path | None = None
    val_fraction: float = 0.05
    val_max_images: int = 12
    val_crop: int = 256
    # Longer side after loading; big photos are shrunk once so RAM stays small and crops vary more.
    max_side: int = 1024
    patch_size: int = 64
    batch_size: int = 8
    num_workers: int = 0
    flips: bool = True
    rot90: bool = True
    rescale: tuple[float, float] = (0.5, 1.0)


@dataclass
class DegradationConfig:
    task: str = "denoise"
    params: dict[str, Any] = field(default_factory=dict)
    # Parameters of the fixed validation degradation (default: irx.degrade.DEFAULT_EVAL_PARAMS).
    val_params: dict[str, Any] | None = None


@dataclass
class TrainConfig:
    iterations: int = 1000
    lr: float = 2e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    warmup: int = 100
    ema_decay: float = 0.999
    loss: str = "l1"
    grad_clip: float = 0.0
    seed: int = 0
    val_every: int = 500
    ckpt_every: int = 250
    log_every: int = 25
    amp: str = "bf16"
    threads: int = 0
    # Wall-clock budget in seconds (0 = none): after a short probe of the step rate, the run
    # plans its iteration count (capped by `iterations`) so the cosine schedule ends in time.
    time_limit: float = 0.0
    # Start from these weights (a .safetensors file, e.g. a bundled model) instead of random ones: fine-tuning.
    init_weights: str = ""


@dataclass
class OutputConfig:
    dir: Path = Path("runs/default")
    export_name: str = ""
    # Where the exported weights and record go; empty = the package's bundled zoo (irx/zoo/weights).
    export_dir: Path | None = None
    default_for: list[str] = field(default_factory=list)
    description: str = ""
    license: str = "MIT"
    # float16 halves the file; the outputs stay within one uint8 level (about 70 dB) of float32.
    export_dtype: str = "float32"


@dataclass
class RunConfig:
    model: ModelConfig
    data: DataConfig
    degradation: DegradationConfig
    train: TrainConfig
    output: OutputConfig
    source: Path | None = None

    @property
    def task(self) -> str:
        return self.degradation.task

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/pickle-free data (str, numbers, lists, dicts) for checkpoints and records."""

        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return {
            name: plain(getattr(self, name))
            for name in ("model", "data", "degradation", "train", "output")
        } | {"source": str(self.source) if self.source else None}


_TABLES: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "degradation": DegradationConfig,
    "train": TrainConfig,
    "output": OutputConfig,
}


def resolve_recipe(config: str | Path) -> Path:
    """A path to a TOML file, or the name of a bundled recipe (e.g. "denoise")."""
    path = Path(config)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{path.name}.toml" if path.suffix == "" else RECIPES_DIR / path.name
    if bundled.is_file() and len(path.parts) == 1:
        return bundled
    names = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
    raise UsageError(f"config {str(config)!r} not found; give a TOML file or a bundled recipe: {names}")


def load_config(
    config: str | Path,
    data_root: str | Path | None = None,
    iterations: int | None = None,
    time_limit: float | None = None,
    init_weights: str | Path | None = None,
) -> RunConfig:
    """Read and validate a recipe; the keyword arguments, when given, override the file."""
    path = resolve_recipe(config)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from exc
    cfg = config_from_dict(raw, data_root=data_root, source=path)
    if iterations is not None:
        cfg.train.iterations = iterations
    if time_limit is not None:
        cfg.train.time_limit = float(time_limit)
    if init_weights is not None:
        cfg.train.init_weights = str(init_weights)
    _validate(cfg)  # the overrides obey the same rules as the file
    return cfg


def config_from_dict(
    raw: dict[str, Any], data_root: str | Path | None = None, source: Path | None = None
) -> RunConfig:
    """Build a RunConfig from parsed TOML; every unknown table or key is a UsageError."""
    where = f" in {source}" if source else ""
    unknown = sorted(set(raw) - set(_TABLES))
    if unknown:
        raise UsageError(f"unknown config table(s) {', '.join(unknown)}{where}; known: {', '.join(_TABLES)}")
    tables: dict[str, Any] = {}
    for name, cls in _TABLES.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise UsageError(f"[{name}]{where} must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(section) - known)
        if bad:
            raise UsageError(
                f"unknown key(s) {', '.join(f'{name}.{k}' for k in bad)}{where}; "
                f"known: {', '.join(sorted(known))}"
            )
        tables[name] = section
    cfg = RunConfig(
        model=_build(ModelConfig, tables["model"], "model"),
        data=_build_data(tables["data"], data_root),
        degradation=_build(DegradationConfig, tables["degradation"], "degradation"),
        train=_build(TrainConfig, tables["train"], "train"),
        output=_build(OutputConfig, tables["output"], "output"),
        source=source,
    )
    _validate(cfg)
    return cfg


def _build(cls: type, values: dict[str, Any], table: str) -> Any:
    obj = cls()
    for key, value in values.items():
        default = getattr(obj, key)
        setattr(obj, key, _coerce(value, default, f"{table}.{key}"))
    return obj


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Check a TOML value against the type of the field's default."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and len(value) == len(default)
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = tuple(float(v) for v in value) if ok else value
    elif isinstance(default, Path) or (default is None and name.endswith(("_dir", ".val_dir"))):
        ok = isinstance(value, str)
        value = Path(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list)
    elif isinstance(default, dict) or default is None:
        ok = isinstance(value, dict)
    else:  # pragma: no cover - every field has one of the types above
        ok = True
    if not ok:
        shown = type(default).__name__ if default is not None else "table"
        raise UsageError(f"config key {name} has the wrong type ({value!r}); expected {shown}")
    return value


def _build_data(values: dict[str, Any], data_root: str | Path | None) -> DataConfig:
    values = dict(values)
    dirs = values.pop("train_dirs", [])
    data = _build(DataConfig, values, "data")
    root = Path(data_root or os.environ.get(DATA_ROOT_ENV) or data.data_root).expanduser()
    data.data_root = str(root)
    if not isinstance(dirs, list) or not dirs:
        raise UsageError("data.train_dirs must be a non-empty list of folders or {path=..., downscale=...}")
    for entry in dirs:
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise UsageError(f"bad data.train_dirs entry {entry!r}; use \"folder\" or {{path=..., downscale=0.5}}")
        bad = sorted(set(entry) - {"path", "downscale"})
        if bad:
            raise UsageError(f"unknown key(s) {', '.join(bad)} in data.train_dirs entry; known: path, downscale")
        factor = entry.get("downscale", 1.0)
        if not isinstance(factor, (int, float)) or not 0 < factor <= 1:
            raise UsageError(f"data.train_dirs downscale must be in (0, 1], got {factor!r}")
        data.train_dirs.append(TrainDir(path=root / entry["path"], downscale=float(factor)))
    if data.val_dir is not None:
        data.val_dir = root / data.val_dir
    return data


def _validate(cfg: RunConfig) -> None:
    def need(cond: bool, message: str) -> None:
        if not cond:
            raise UsageError(message)

    m, d, t = cfg.model, cfg.data, cfg.train
    need(m.arch in ("laformer", "rwkvir"), f"model.arch must be laformer or rwkvir, got {m.arch!r}")
    need(m.scale in (1, 2, 3, 4, 8), f"model.scale must be 1, 2, 3, 4 or 8, got {m.scale}")
    need(cfg.degradation.task in TASKS, f"degradation.task must be one of {', '.join(TASKS)}")
    sized = [t for t in TASKS if get_task(t).has_scale]
    need(get_task(cfg.degradation.task).has_scale == (m.scale > 1),
         f"model.scale > 1 goes with task {' or '.join(sized)} only")
    need(d.patch_size >= 4 and d.patch_size % m.scale == 0, "data.patch_size must be >= 4 and a multiple of model.scale")
    need(d.batch_size >= 1, "data.batch_size must be >= 1")
    need(d.num_workers >= 0, "data.num_workers must be >= 0")
    need(0 <= d.val_fraction < 1, "data.val_fraction must be in [0, 1)")
    need(d.val_crop >= d.patch_size // 2 and d.val_crop % m.scale == 0, "data.val_crop must be a multiple of model.scale")
    need(0 < d.rescale[0] <= d.rescale[1] <= 2, "data.rescale must be [low, high] with 0 < low <= high <= 2")
    need(d.max_side >= d.patch_size, "data.max_side must be at least data.patch_size")
    need(t.iterations >= 1, "train.iterations must be >= 1")
    need(t.lr > 0 and 0 <= t.min_lr <= t.lr, "train.lr must be > 0 and train.min_lr in [0, lr]")
    need(0 <= t.ema_decay < 1, "train.ema_decay must be in [0, 1)")
    need(t.loss in ("l1", "charbonnier"), f"train.loss must be l1 or charbonnier, got {t.loss!r}")
    need(t.amp in ("off", "bf16", "fp16"), f"train.amp must be off, bf16 or fp16, got {t.amp!r}")
    need(all(b > 0 for b in (t.val_every, t.ckpt_every, t.log_every)), "train.val_every, ckpt_every and log_every must be >= 1")
    need(t.time_limit >= 0, "train.time_limit must be >= 0 seconds (0 = no limit)")
    need(t.warmup >= 0 and t.threads >= 0 and t.grad_clip >= 0, "train.warmup, threads and grad_clip must be >= 0")
    need(all(0 <= b < 1 for b in t.betas), "train.betas must be two numbers in [0, 1)")
    need(cfg.output.export_dtype in ("float32", "float16"),
         f"output.export_dtype must be float32 or float16, got {cfg.output.export_dtype!r}")
    bad = [task for task in cfg.output.default_for if task not in TASKS]
    need(not bad, f"output.default_for has unknown task(s) {', '.join(bad)}")
