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
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from irx.media.outputs import Ledgers

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".avif", ".heic", ".heif", ".jxl", ".gif", ".exr"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tif": ".tif", "tiff": ".tif", "bmp": ".bmp",
                 "avif": ".avif", "heic": ".heic", "heif": ".heif", "jxl": ".jxl", "gif": ".gif", "exr": ".exr"}

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
    """Every input in exactly one of jobs, skipped or failures, decided before any work."""

    jobs: list[Job] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    skipped: list[str] = field(default_factory=list)
    # Why an input was skipped, when it is not simply that its output exists: (input, reason).
    skip_reasons: list[tuple[str, str]] = field(default_factory=list)
    # Every folder an output of this plan goes to (where stale temp files are looked for).
    output_folders: set[Path] = field(default_factory=set)


def kind_of(path: Path) -> Kind | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _is_regular(path: Path) -> bool:
    """A regular file (after symlinks): FIFOs, sockets and devices are never opened (a FIFO blocks forever)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    """Visible entries that are not folders (FIFOs included: the plan reports them, it never opens them)."""
    found: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    else:
        found = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())
    return found


def _output_suffix(source: Path, out_format: str | None) -> str:
    if out_format:
        return FORMAT_SUFFIX[out_format.lower()]
    return source.suffix


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the filesystem of ``folder``, or of its nearest existing parent, holds."""
    for candidate in (folder, *folder.parents):
        try:
            return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def _too_long(target: Path) -> str | None:
    limit = _name_max(target.parent)
    for part in target.parts:
        if len(os.fsencode(part)) > limit:
            return f"the output name {part[:40]}... is {len(os.fsencode(part))} bytes, more than this filesystem holds ({limit})"
    return None


@dataclass
class _Candidate:
    source: Path
    root: Path
    input_arg: Path
    discovered: bool  # found in a folder or by a pattern, not named by the user


def _expand(inputs: list[str], recursive: bool, plan: JobPlan) -> list[_Candidate]:
    """Files, folders and patterns -> candidate files; an existing name is taken literally, never as a pattern."""
    found: list[_Candidate] = []
    for text in inputs:
        path = Path(text)
        if os.path.lexists(text) and path.is_dir():
            found += [_Candidate(p, path, path, True) for p in _visible_files(path, recursive)]
        elif os.path.lexists(text):
            found.append(_Candidate(path, path.parent, path, False))
        elif _is_glob(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [_Candidate(p, p.parent, p, True) for p in matches if not p.is_dir()]
            if not files:
                plan.failures.append((text, "no files match this pattern"))
            found += files
        else:
            plan.failures.append((text, "no such file or folder"))
    return found


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
    """Expand inputs into jobs; every input ends in exactly one of jobs, skipped or failures.

    No output is ever an input of the same run, and with ``skip_existing=False`` only outputs irx wrote
    itself (see irx.media.outputs) are replaced; anything else is a failure of that input, not of the run.
    `shard=(rank, world)` keeps every world-th input starting at rank (torchrun: one shard per process);
    it is applied before skipping existing outputs, so every rank sees the same split.
    """
    plan = JobPlan()
    ledgers = Ledgers()
    rank, world = shard
    output_is_file = (
        output is not None
        and len(inputs) == 1
        and os.path.lexists(inputs[0])
        and not Path(inputs[0]).is_dir()
        and output.suffix != ""
        and not output.is_dir()
    )

    # Pass 1: which candidates are inputs at all (media files; earlier irx outputs are recognised).
    candidates: list[tuple[_Candidate, Kind]] = []
    for cand in _expand(inputs, recursive, plan):
        kind = kind_of(cand.source)
        if kind is None:
            if not cand.discovered:
                plan.failures.append((str(cand.source), f"unsupported file type {cand.source.suffix or '(none)'!r}"))
            continue
        if not _is_regular(cand.source):
            plan.failures.append((str(cand.source), "not a regular file (a pipe, socket, device or broken link); not opened"))
            continue
        candidates.append((cand, kind))
    sources = {_resolve(cand.source) for cand, _ in candidates}
    inputs_of_run: set[Path] = set()
    kept: list[tuple[_Candidate, Kind]] = []
    for cand, kind in candidates:
        entry = ledgers.entry(cand.source)
        earlier_of_input = entry is not None and Path(entry.source) in sources
        if entry is not None and (earlier_of_input or (cand.discovered and entry.task == suffix)):
            # A shell glob rerun (`irx denoise *.png`) or a folder holding earlier outputs: never restore
            # an output again as if it were a photo (that is how x_denoise_denoise.png happens).
            plan.skipped.append(str(cand.source))
            plan.skip_reasons.append((str(cand.source), f"an output irx {entry.task} wrote earlier (from {entry.source})"))
            continue
        inputs_of_run.add(_resolve(cand.source))
        kept.append((cand, kind))

    # Pass 2: every output is known and checked against every input before any work.
    seen_outputs: dict[Path, Path] = {}
    position = -1
    for cand, kind in kept:
        source = cand.source
        try:
            target = _target_for(source, cand.root, cand.input_arg, output, output_is_file, suffix, out_format, kind)
            problem = _too_long(target)
            if problem is None:
                resolved = _resolve(target)
                problem = _conflict(source, target, resolved, inputs_of_run, seen_outputs)
            if problem is not None:
                plan.failures.append((str(source), problem))
                continue
            seen_outputs[resolved] = source
            position += 1
            if position % world != rank:
                continue
            plan.output_folders.add(target.parent)
            if os.path.lexists(target):
                if target.is_dir():
                    plan.failures.append((str(source), f"the output {target} is a folder; choose another -o"))
                    continue
                if skip_existing:
                    plan.skipped.append(str(source))
                    continue
                if ledgers.entry(target) is None:
                    plan.failures.append((str(source), _NOT_OURS.format(target=target)))
                    continue
        except OSError as error:  # a name or path this filesystem cannot hold fails this input only
            plan.failures.append((str(source), f"cannot use the output name: {error.strerror or error}"))
            continue
        plan.jobs.append(Job(source=source, output=target, kind=kind))
    return plan


_NOT_OURS = (
    "{target} exists and was not written by irx (or was changed since); --overwrite only replaces "
    "irx's own outputs: move it away or choose another -o"
)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _conflict(
    source: Path, target: Path, resolved: Path, inputs_of_run: set[Path], seen_outputs: dict[Path, Path]
) -> str | None:
    """Why ``target`` cannot be ``source``'s output, or None."""
    if resolved == _resolve(source):
        return "the output would overwrite the input; choose another -o"
    if resolved in inputs_of_run:
        return f"its output {target} is also an input of this run; choose another -o"
    if resolved in seen_outputs:
        return f"output {target} is also the output of {seen_outputs[resolved]}"
    return None


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


def distributed_shard() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun on one or several machines, else (0, 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 and 0 <= rank < world else (0, 1)
