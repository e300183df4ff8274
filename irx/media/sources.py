"""Turn command-line inputs (files, folders, globs) into jobs: one input file and where its output goes.

Output rules (documented in the README):
- one input file with `-o out.png`: exactly that file;
- without `-o`: beside the input as `<stem>_<suffix><ext>`; a folder `photos/` goes to a sibling folder
  `photos_<suffix>/` that mirrors its tree (so a rerun never mistakes outputs for inputs);
- with `-o folder/`: the folder mirrors each input folder's tree, files keep their names.
An input is never its own output.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tif": ".tif", "tiff": ".tif", "bmp": ".bmp"}

Kind = Literal["image", "video"]


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    kind: Kind

    @property
    def name(self) -> str:
        return str(self.source)


@dataclass
class JobPlan:
    jobs: list[Job] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    skipped: list[str] = field(default_factory=list)


def kind_of(path: Path) -> Kind | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    else:
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return found


def _output_suffix(source: Path, out_format: str | None) -> str:
    if out_format:
        return FORMAT_SUFFIX[out_format.lower()]
    return source.suffix


def plan_jobs(
    inputs: list[str],
    *,
    suffix: str,
    output: Path | None = None,
    recursive: bool = False,
    out_format: str | None = None,
    skip_existing: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> JobPlan:
    """Expand inputs into jobs; report missing inputs and skipped outputs instead of stopping.

    `shard=(rank, world)` keeps every world-th input starting at rank (torchrun: one shard per process);
    it is applied before skipping existing outputs, so every rank sees the same split.
    """
    plan = JobPlan()
    rank, world = shard
    position = -1
    seen_outputs: dict[Path, Path] = {}
    output_is_file = (
        output is not None
        and len(inputs) == 1
        and not _is_glob(inputs[0])
        and Path(inputs[0]).is_file()
        and output.suffix != ""
        and not output.is_dir()
    )
    excluded_root = output.resolve() if output is not None and not output_is_file else None

    for text in inputs:
        path = Path(text)
        if _is_glob(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            candidates = [(p, p.parent, True) for p in matches if p.is_file()]
            if not candidates:
                plan.failures.append((text, "no files match this pattern"))
        elif path.is_dir():
            candidates = [(p, path, True) for p in _visible_files(path, recursive)]
        elif path.is_file():
            candidates = [(path, path.parent, False)]
        else:
            plan.failures.append((text, "no such file or folder"))
            continue

        for source, root, discovered in candidates:
            kind = kind_of(source)
            if kind is None:
                if not discovered:
                    plan.failures.append((str(source), f"unsupported file type {source.suffix or '(none)'!r}"))
                continue
            if excluded_root is not None and _is_within(source.resolve(), excluded_root):
                continue  # an earlier output inside the input tree
            if discovered and output is None and source.stem.endswith(f"_{suffix}"):
                continue  # an earlier output beside its input
            target = _target_for(source, root, path, output, output_is_file, suffix, out_format, kind)
            resolved = target.resolve()
            if resolved == source.resolve():
                plan.failures.append((str(source), "the output would overwrite the input; choose another -o"))
                continue
            if resolved in seen_outputs:
                plan.failures.append((str(source), f"output {target} is also the output of {seen_outputs[resolved]}"))
                continue
            seen_outputs[resolved] = source
            position += 1
            if position % world != rank:
                continue
            if target.exists() and skip_existing:
                plan.skipped.append(str(source))
                continue
            plan.jobs.append(Job(source=source, output=target, kind=kind))
    return plan


def _target_for(
    source: Path,
    root: Path,
    input_arg: Path,
    output: Path | None,
    output_is_file: bool,
    suffix: str,
    out_format: str | None,
    kind: Kind,
) -> Path:
    ext = _output_suffix(source, out_format) if kind == "image" else source.suffix
    if output_is_file and output is not None:
        return output
    if output is None:
        if input_arg.is_dir():
            folder = input_arg.parent / f"{input_arg.resolve().name}_{suffix}"
            return folder / source.relative_to(root).with_suffix(ext)
        return source.with_name(f"{source.stem}_{suffix}{ext}")
    if input_arg.is_dir():
        return output / source.relative_to(root).with_suffix(ext)
    return output / source.with_suffix(ext).name


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def distributed_shard() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun on one or several machines, else (0, 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 and 0 <= rank < world else (0, 1)
