"""The user's config file: default models per task, device and precision.

Location: the path in ``IRX_CONFIG``, else ``$XDG_CONFIG_HOME/irx/config.toml``, else
``~/.config/irx/config.toml``. Example::

    device = "cuda"
    precision = "fp16"

    [defaults]
    denoise = "scunet-real-psnr"       # a zoo name, a weights file or hf://owner/repo/file
    upscale = "dat-x4"                 # any scale
    upscale_x2 = "~/models/my_x2.safetensors"   # only for --scale 2
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irx.errors import UsageError
from irx.tasks import TASKS, has_scale

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class UserConfig:
    """What the config file says; empty when there is no file."""

    default_models: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    precision: str | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other tables, for other parts of irx

    def default_model(self, task: str, scale: int | None = None) -> str | None:
        """The configured model for a task (``upscale_x<scale>`` before ``upscale``)."""
        if has_scale(task) and scale is not None:
            specific = self.default_models.get(f"{task}_x{scale}")
            if specific:
                return specific
        return self.default_models.get(task)


def config_path() -> Path:
    """Where the config file is looked for (read from the environment at call time)."""
    explicit = os.environ.get("IRX_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "irx" / "config.toml"


def _default_keys() -> set[str]:
    return set(TASKS) | {f"{t}_x{s}" for t in TASKS if has_scale(t) for s in range(1, 17)}


def load_user_config(path: str | os.PathLike[str] | None = None) -> UserConfig:
    """Read and check the config file; a missing default file gives an empty config.

    A file named by ``path`` or ``IRX_CONFIG`` must exist. Any problem raises UsageError naming
    the file and what is wrong.
    """
    explicit = path is not None or bool(os.environ.get("IRX_CONFIG"))
    file = Path(path).expanduser() if path is not None else config_path()
    if not file.is_file():
        if explicit:
            raise UsageError(f"config file {file} does not exist; create it or unset IRX_CONFIG")
        return UserConfig()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {file}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {file} is not valid TOML: {exc}") from exc

    def bad(problem: str) -> UsageError:
        return UsageError(f"config file {file}: {problem}")

    defaults = data.pop("defaults", {})
    if not isinstance(defaults, dict):
        raise bad("[defaults] must be a table of task = \"model\" lines")
    allowed = _default_keys()
    models: dict[str, str] = {}
    for key, value in defaults.items():
        if key not in allowed:
            raise bad(f"[defaults] has unknown task {key!r}; tasks are {', '.join(TASKS)} (or upscale_x2, upscale_x4, ...)")
        if not isinstance(value, str) or not value.strip():
            raise bad(f"[defaults] {key} must be a non-empty string (a model name, a file or hf://...)")
        models[key] = value.strip()

    device = data.pop("device", None)
    if device is not None and (not isinstance(device, str) or not device.strip()):
        raise bad('device must be a string such as "cpu", "cuda", "cuda:1" or "auto"')
    precision = data.pop("precision", None)
    if precision is not None and precision not in PRECISIONS:
        raise bad(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return UserConfig(default_models=models, device=device, precision=precision, path=file, extra=data)
