"""`irx models ...`: list, inspect, download, verify and locate the zoo's weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from irx.errors import IrxError, UsageError
from irx.tasks import TASKS
from irx.zoo import Catalogue, ModelRecord, default_catalogue, ensure_local, resolve
from irx.zoo.hub import (
    HubFile,
    cached_file,
    check_file,
    fetch,
    hub_settings,
    parse_hf_uri,
    verified_sha256,
)

models_app = typer.Typer(
    help="List, inspect, download and verify models. Names work with --model in every task command.",
    no_args_is_help=True,
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


def _local_path(record: ModelRecord, cat: Catalogue) -> Path | None:
    """Where the record's file is on this machine, without downloading (None if absent)."""
    if record.source == "bundled":
        path = cat.bundled_path(record)
        return path if path.is_file() else None
    if record.repo_id is None or record.filename is None:
        return None
    return cached_file(HubFile(record.repo_id, record.filename, record.revision or "main"), hub_settings())


def _size_mb(path: Path | None) -> float | None:
    return round(path.stat().st_size / 1e6, 1) if path is not None else None


def _row(record: ModelRecord, cat: Catalogue) -> dict[str, Any]:
    local = _local_path(record, cat)
    return {
        **record.to_dict(),
        "size_mb": _size_mb(local),
        "cached": local is not None,
        "path": str(local) if local else None,
    }


@models_app.command("list")
def list_models(
    task: Annotated[str | None, typer.Option("--task", "-t", help=f"Only models for this task ({', '.join(TASKS)}).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per model) for scripts.")] = False,
) -> None:
    """Show the zoo: bundled models first, then Hub models (size once cached)."""
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    cat = default_catalogue()
    rows = [_row(r, cat) for r in cat.records(task)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"irx models{f' for {task}' if task else ''}", box=box.SIMPLE_HEAD,
                  caption="* not loadable yet (see `irx models info NAME`)   \\[d] default for its task")
    table.add_column("name", no_wrap=True)
    for column in ("task", "arch", "scale", "size", "source"):
        table.add_column(column, justify="right" if column in ("scale", "size") else "left", no_wrap=True)
    table.add_column("licence", min_width=10)
    for row in rows:
        mark = ("" if row["supported"] else "*") + (" [d]" if row["default_for"] else "")
        where = "bundled" if row["source"] == "bundled" else ("hub, cached" if row["cached"] else "hub")
        tasks = "all" if len(row["tasks"]) == len(TASKS) else ",".join(row["tasks"])
        table.add_row(
            escape(row["name"] + mark),
            tasks,
            row["arch"],
            f"x{row['scale']}",
            f"{row['size_mb']:.1f} MB" if row["size_mb"] is not None else "?",
            where,
            row["license"],
        )
    _out.print(table)


@models_app.command("info")
def info(name: Annotated[str, typer.Argument(help="A zoo name (see `irx models list`).")]) -> None:
    """Everything irx knows about one model."""
    cat = default_catalogue()
    record = cat.get(name)
    row = _row(record, cat)
    local = _local_path(record, cat)
    row["verified_sha256"] = verified_sha256(local) if local else None
    row["hf_uri"] = record.hf_uri
    width = max(len(k) for k in row)
    for key, value in row.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value) if value else "-"
        typer.echo(f"{key:<{width}}  {value if value not in (None, '') else '-'}")


@models_app.command("download")
def download(
    names: Annotated[list[str], typer.Argument(help="Zoo names or hf://owner/repo/file[@revision].")],
    force: Annotated[bool, typer.Option("--force", help="Download again even when a verified copy is cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fetch Hub models into the Hugging Face cache and verify their SHA-256."""
    cat = default_catalogue()
    failed = 0
    for name in names:
        try:
            if name.startswith("hf://"):
                path = fetch(parse_hf_uri(name), force=force, quiet=quiet)
            else:
                record = cat.get(name)
                path = ensure_local(record, catalogue=cat, force=force, quiet=quiet)
                if record.source == "bundled":
                    _err.print(f"{record.name} is bundled with irx (nothing to download)")
            typer.echo(f"{name}\t{path}")
        except IrxError as exc:
            failed += 1
            _err.print(f"[red]error[/red]: {name}: {exc}")
    if failed:
        raise typer.Exit(1)


@models_app.command("verify")
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Models to check (default: all bundled and cached).")] = None,
) -> None:
    """Re-hash bundled and cached weights; exit status 1 if any file does not match."""
    cat = default_catalogue()
    records = [cat.get(n) for n in names] if names else cat.records()
    table = Table(title="irx models verify")
    for column in ("name", "source", "status", "path"):
        table.add_column(column)
    bad = 0
    for record in records:
        local = _local_path(record, cat)
        if local is None:
            status = "missing" if record.source == "bundled" else "not cached"
            bad += record.source == "bundled"
            if names or record.source == "bundled":
                table.add_row(record.name, record.source, status, "-")
            continue
        problem = check_file(local, pinned=record.sha256, use_cache=False)
        if problem:
            bad += 1
            hint = "reinstall irx" if record.source == "bundled" else f"run `irx models download {record.name} --force`"
            table.add_row(record.name, record.source, f"[red]MISMATCH[/red]: {problem}; {hint}", str(local))
        else:
            table.add_row(record.name, record.source, "[green]ok[/green]", str(local))
    _out.print(table)
    if bad:
        raise typer.Exit(1)


@models_app.command("path")
def path(
    name: Annotated[str, typer.Argument(help="A zoo name, hf://owner/repo/file[@revision] or a file.")],
    offline: Annotated[bool, typer.Option("--offline", help="Never download; fail if the file is not cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Print the local path of a model's weights, downloading them first if needed."""
    resolved = resolve(name, offline=offline, quiet=quiet)
    if resolved.warning:
        _err.print(f"[yellow]warning[/yellow]: {resolved.warning}")
    typer.echo(str(resolved.path))


__all__ = ["models_app"]
