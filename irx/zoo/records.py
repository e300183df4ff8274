"""Model records: what the zoo knows about each model, the bundled JSON sidecars, and the catalogue.

A record is data only (timm-style): where the weights live, what they are for, their licence and
their pinned hash. Bundled models are described by a JSON file next to their weights
(``irx/zoo/weights/<name>.json`` beside ``<name>.safetensors``); Hub models and files at a plain
https address (``source="url"``, e.g. GitHub release assets, which must pin their SHA-256) by the
table in :mod:`irx.zoo.registry_data`. :class:`Catalogue` joins both and answers "which model is the default
for this task".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from irx.errors import ModelError
from irx.media.atomic import atomic_write_bytes
from irx.tasks import TASKS, has_scale

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SCHEMA_VERSION = 1
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

Source = Literal["bundled", "hub", "url"]
_SOURCES = ("bundled", "hub", "url")


@dataclass(frozen=True)
class ModelRecord:
    """One model of the zoo (see docs/models.md for the meaning of each field)."""

    name: str
    tasks: tuple[str, ...]
    arch: str
    scale: int
    source: Source
    filename: str | None  # None only for unsupported Hub records whose file is not known yet
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None  # pinned SHA-256 of the weights file
    license: str = "see model card"
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict, hash=False)
    third_party: bool = False
    supported: bool = True
    default_for: tuple[str, ...] = ()
    requires: str | None = None  # an optional Python package needed to load it
    url: str | None = None  # the https address of a ``source="url"`` record

    def __post_init__(self) -> None:
        # Normalise lists from JSON into tuples so records stay hashable and comparable.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "default_for", tuple(self.default_for))
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.lower())
        problems = _record_problems(self)
        if problems:
            raise ValueError(f"invalid model record {self.name!r}: {'; '.join(problems)}")

    @property
    def hf_uri(self) -> str | None:
        """``hf://owner/repo/file@revision`` for Hub records, else None."""
        if self.source != "hub" or self.repo_id is None or self.filename is None:
            return None
        return f"hf://{self.repo_id}/{self.filename}@{self.revision or 'main'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        """Build a record from a dict, ignoring keys it does not know (forward compatible)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        missing = [f.name for f in fields(cls) if f.name not in kwargs and f.name in _REQUIRED]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        if "metrics" in kwargs and kwargs["metrics"] is None:
            kwargs["metrics"] = {}
        return cls(**kwargs)


_REQUIRED = ("name", "tasks", "arch", "scale", "source", "filename")


def _record_problems(r: ModelRecord) -> list[str]:
    problems: list[str] = []
    if not isinstance(r.name, str) or not _NAME_RE.match(r.name):
        problems.append("name must be letters, digits and . _ + - (no spaces or slashes)")
    if not r.tasks:
        problems.append("tasks is empty")
    for task in (*r.tasks, *r.default_for):
        if task not in TASKS:
            problems.append(f"unknown task {task!r}")
    for task in r.default_for:
        if task not in r.tasks:
            problems.append(f"default_for {task!r} is not one of its tasks")
    if not isinstance(r.scale, int) or isinstance(r.scale, bool) or r.scale < 1:
        problems.append("scale must be an integer >= 1")
    if r.source not in _SOURCES:
        problems.append(f"source must be one of {', '.join(_SOURCES)}, not {r.source!r}")
    if r.source == "hub" and not r.repo_id:
        problems.append("a Hub record needs repo_id")
    if r.source == "url":
        # A plain address declares no hash of its own: the pin is the only check, so it is required.
        if not (isinstance(r.url, str) and r.url.startswith(("https://", "http://"))):
            problems.append("a url record needs url (an http(s) address)")
        if r.sha256 is None:
            problems.append("a url record needs sha256 (a plain address has no declared hash to check against)")
        if not r.filename:
            problems.append("a url record needs filename")
    elif r.url is not None:
        problems.append("only a url record has url")
    if r.source == "bundled" and not r.filename:
        problems.append("a bundled record needs filename")
    if r.filename is None and r.supported:
        problems.append("a supported record needs filename")
    if r.sha256 is not None and not _SHA256_RE.match(r.sha256):
        problems.append("sha256 must be 64 hex digits")
    if not isinstance(r.metrics, dict):
        problems.append("metrics must be a mapping")
    return problems


# ---------------------------------------------------------------- bundled JSON sidecars


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename, so it is never half-written."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=True)


def write_bundled_record(
    record: ModelRecord | Mapping[str, Any] | str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | Mapping[str, Any] = DEFAULT_WEIGHTS_DIR,
) -> Path:
    """Write ``<weights_dir>/<name>.json`` for the weights ``<weights_dir>/<name>.safetensors``.

    ``record`` is a :class:`ModelRecord` or a dict with the same fields; extra keys of a dict
    (e.g. ``training``) are kept in the JSON. The weights file must exist; its SHA-256 is filled
    in when missing and checked when given. Returns the JSON path.

    The older call form ``write_bundled_record(json_path, record_dict)`` is accepted too.
    """
    if isinstance(record, (str, os.PathLike)) and isinstance(weights_dir, Mapping):
        json_path = Path(record)
        record, weights_dir = weights_dir, json_path.parent
        if json_path.name != f"{record.get('name')}.json":
            raise ValueError(f"{json_path.name} does not match the record name {record.get('name')!r}")
    assert not isinstance(weights_dir, Mapping)
    folder = Path(weights_dir)
    extra: dict[str, Any] = {}
    if isinstance(record, ModelRecord):
        data = record.to_dict()
    elif isinstance(record, Mapping):
        data = dict(record)
        known = {f.name for f in fields(ModelRecord)}
        extra = {k: v for k, v in data.items() if k not in known and k != "schema"}
    else:
        raise TypeError("record must be a ModelRecord or a mapping")
    name = data.get("name")
    data.setdefault("source", "bundled")
    data.setdefault("filename", f"{name}.safetensors")
    if data["source"] != "bundled":
        raise ValueError("write_bundled_record writes bundled records only (source='bundled')")
    if data["filename"] != f"{name}.safetensors":
        raise ValueError(f"a bundled record's filename must be {name}.safetensors, not {data['filename']!r}")
    weights = folder / data["filename"]
    if not weights.is_file():
        raise ModelError(f"cannot write the record of {name}: {weights} does not exist; export the weights first")
    actual = sha256_file(weights)
    if data.get("sha256") and str(data["sha256"]).lower() != actual:
        raise ModelError(
            f"the record of {name} pins sha256 {data['sha256']} but {weights.name} hashes to {actual}; "
            "re-export the weights and the record together"
        )
    data["sha256"] = actual
    checked = ModelRecord.from_dict(data)  # validates every field
    payload = {"schema": SCHEMA_VERSION, **checked.to_dict(), **extra}
    json_path = folder / f"{checked.name}.json"
    atomic_write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return json_path


def read_bundled_record(json_path: str | os.PathLike[str]) -> ModelRecord:
    """Read and validate one bundled JSON sidecar."""
    path = Path(json_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the file is not a JSON object")  # noqa: TRY004 - reported as a bad file
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ValueError(f"schema {schema!r} is newer than this irx understands ({SCHEMA_VERSION})")
        record = ModelRecord.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"bundled model record {path} is invalid ({exc}); reinstall irx or re-export it") from exc
    if record.source != "bundled":
        raise ModelError(f"bundled model record {path} says source={record.source!r}; it must be 'bundled'")
    if path.stem != record.name:
        raise ModelError(f"bundled model record {path} is named {record.name!r}; the file must be {record.name}.json")
    return record


def load_bundled_records(weights_dir: str | os.PathLike[str] | None = None) -> list[ModelRecord]:
    """All bundled records of a folder whose weights file is present, sorted by name."""
    folder = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    if not folder.is_dir():
        return []
    records = []
    for json_path in sorted(folder.glob("*.json")):
        record = read_bundled_record(json_path)
        if not (folder / str(record.filename)).is_file():
            # A record without its weights cannot be used; skipping keeps the rest of the zoo working.
            log.warning("bundled record %s has no weights file %s; skipped", json_path.name, record.filename)
            continue
        records.append(record)
    return records


# ---------------------------------------------------------------- catalogue


class Catalogue:
    """The models irx knows: bundled records (with their folder) plus Hub and url records."""

    def __init__(self, records: Iterable[ModelRecord], weights_dir: str | os.PathLike[str] | None = None):
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
        self._by_name: dict[str, ModelRecord] = {}
        for record in records:
            if record.name in self._by_name:
                raise ModelError(f"two zoo records are named {record.name!r}; rename one of them")
            self._by_name[record.name] = record

    @classmethod
    def default(cls, weights_dir: str | os.PathLike[str] | None = None) -> Catalogue:
        """Bundled records of ``weights_dir`` (default: the package's) plus the Hub/url table."""
        from irx.zoo.registry_data import HUB_RECORDS

        return cls([*load_bundled_records(weights_dir), *HUB_RECORDS], weights_dir)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def records(self, task: str | None = None) -> list[ModelRecord]:
        """Records (optionally for one task): bundled first, then by name."""
        chosen = [r for r in self._by_name.values() if task is None or task in r.tasks]
        return sorted(chosen, key=lambda r: (r.source != "bundled", r.name))

    def get(self, name: str) -> ModelRecord:
        """The record called ``name``; ModelError with close matches when there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            pass
        by_lower = {n.lower(): n for n in self._by_name}
        if name.lower() in by_lower:
            return self._by_name[by_lower[name.lower()]]
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
        hint = f"did you mean: {', '.join(by_lower[c] for c in close)}? " if close else ""
        raise ModelError(
            f"unknown model {name!r}; {hint}see `irx models list` for names, or pass a weights file or hf://owner/repo/file"
        )

    def bundled_path(self, record: ModelRecord) -> Path:
        return self.weights_dir / str(record.filename)

    def fastest_bundled(self, task: str, scale: int | None = None) -> ModelRecord | None:
        """The bundled record for a task (of that scale, where it has one) with the fewest parameters."""
        fitting = [
            r for r in self._by_name.values()
            if r.source == "bundled" and r.supported and task in r.tasks
            and (scale is None or not has_scale(task) or r.scale == scale)
        ]
        if not fitting:
            return None
        return min(fitting, key=lambda r: (_parameter_count(self.bundled_path(r)), r.name))

    def defaults(self, task: str, scale: int | None = None) -> tuple[ModelRecord | None, ModelRecord | None]:
        """(third-party default, bundled default) for a task; either may be None.

        The bundled default is the bundled record whose ``default_for`` has the task; for
        ``upscale`` with a scale, the bundled upscale record of that scale (one marked
        ``default_for`` upscale wins a tie). A Hub or url record marked ``default_for`` the task
        is preferred when it can be had, with the bundled one as its offline fallback; one that
        ``requires`` an optional package counts only when that package is installed.
        """

        def fits(r: ModelRecord) -> bool:
            return r.supported and (scale is None or not has_scale(task) or r.scale == scale)

        ranked = sorted(self._by_name.values(), key=lambda r: r.name)
        bundled = [r for r in ranked if r.source == "bundled" and fits(r)]
        marked = [r for r in bundled if task in r.default_for]
        if has_scale(task) and scale is not None:
            # Any bundled upscaler of the right scale is the default for that scale.
            marked = marked or [r for r in bundled if task in r.tasks]
        online = [
            r for r in ranked
            if r.source != "bundled" and fits(r) and task in r.default_for and requirement_met(r)
        ]
        return (online[0] if online else None), (marked[0] if marked else None)


def requirement_met(record: ModelRecord) -> bool:
    """True when the record needs no optional package, or that package can be imported."""
    if record.requires is None:
        return True
    import importlib.util

    return importlib.util.find_spec(record.requires) is not None


def _parameter_count(path: Path) -> int:
    """Parameters in a safetensors file, from its header only (no tensor is read)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    count = 0
    for name, entry in header.items():
        if name != "__metadata__":
            size = 1
            for dim in entry["shape"]:
                size *= dim
            count += size
    return count
