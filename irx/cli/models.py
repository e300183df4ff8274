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
from irx.tasks import TASKS, has_scale
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
from irx.zoo.records import requirement_met
from irx.zoo.registry_data import NO_THIRD_PARTY_DEFAULT
from irx.zoo.url import cached_url_file

models_app = typer.Typer(
    help="List, inspect, download and verify models. Names work with --model in every task command.",
    no_args_is_help=True,
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
# Measured by benchmarks/zoo.py (random weights, real configurations); see docs/models.md.
_COSTS = Path(__file__).resolve().parent.parent / "zoo" / "costs.json"


def _costs() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_COSTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _local_path(record: ModelRecord, cat: Catalogue) -> Path | None:
    """Where the record's file is on this machine, without downloading (None if absent)."""
    if record.source == "bundled":
        path = cat.bundled_path(record)
        return path if path.is_file() else None
    if record.source == "url":
        return cached_url_file(record)
    if record.repo_id is None or record.filename is None:
        return None
    return cached_file(HubFile(record.repo_id, record.filename, record.revision or "main"), hub_settings())


def _size_mb(path: Path | None) -> float | None:
    return round(path.stat().st_size / 1e6, 1) if path is not None else None


def _row(record: ModelRecord, cat: Catalogue, costs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    local = _local_path(record, cat)
    cost = costs.get(record.name, {})
    return {
        **record.to_dict(),
        "size_mb": _size_mb(local),
        "cached": local is not None,
        "path": str(local) if local else None,
        "params": cost.get("params"),
        "cpu_s_per_mp": cost.get("cpu_s_per_mp"),
    }


def _params(count: int | None) -> str:
    return f"{count / 1e6:.2f}M" if count else "?"


def _cost(costs: dict[str, dict[str, Any]], record: ModelRecord | None, key: str) -> Any:
    return costs.get(record.name, {}).get(key) if record is not None else None


def _speed(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


def _default_rows(cat: Catalogue, costs: dict[str, dict[str, Any]], only: str | None) -> list[dict[str, Any]]:
    """Per task (upscale per scale): the default online, the default offline, and why when there is none."""
    rows = []
    for task in TASKS if only is None else (only,):
        for scale in (2, 4) if has_scale(task) else (None,):
            online, offline = cat.defaults(task, scale)
            missing = [r for r in cat if task in r.default_for and r.source != "bundled" and not requirement_met(r)
                       and (scale is None or r.scale == scale)]
            if online is not None:
                why = None
            elif missing:
                extra = "irx[extra-arches]" if missing[0].requires == "spandrel_extra_arches" else missing[0].requires
                why = f"{missing[0].name} needs pip install '{extra}' (licence: {missing[0].license})"
            else:
                why = NO_THIRD_PARTY_DEFAULT.get(task, "no third-party default")
            shown = online or offline
            rows.append({
                "task": f"{task} x{scale}" if scale else task,
                "online": online.name if online else None,
                "offline": offline.name if offline else None,
                "why_no_online": why,
                "licence": shown.license if shown else None,
                "params": _cost(costs, online, "params"),
                "cpu_s_per_mp": _cost(costs, online, "cpu_s_per_mp"),
                "offline_params": _cost(costs, offline, "params"),
                "offline_cpu_s_per_mp": _cost(costs, offline, "cpu_s_per_mp"),
            })
    return rows


@models_app.command("list")
def list_models(
    task: Annotated[str | None, typer.Option("--task", "-t", help=f"Only models for this task ({', '.join(TASKS)}).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per model) for scripts.")] = False,
) -> None:
    """Show each task's defaults (online and offline), then the whole zoo with licences and costs."""
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    cat = default_catalogue()
    costs = _costs()
    rows = [_row(r, cat, costs) for r in cat.records(task)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    defaults = _default_rows(cat, costs, task)
    _out.print(_defaults_table(defaults))
    for row in defaults:
        if row["why_no_online"]:  # long reasons go below the table, unwrapped
            _out.print(escape(f"{row['task']}: no online default: {row['why_no_online']}"), soft_wrap=True)
    table = Table(title=f"irx models{f' for {task}' if task else ''}", box=box.SIMPLE_HEAD,
                  caption=escape("* not loadable yet (see `irx models info NAME`)   [d] default for its task   "
                                 "s/MP: CPU seconds per input megapixel (benchmarks/zoo.py)"))
    table.add_column("name", no_wrap=True)
    for column in ("task", "arch", "scale", "params", "s/MP", "size", "source"):
        table.add_column(column, justify="right" if column in ("scale", "params", "s/MP", "size") else "left", no_wrap=True)
    table.add_column("licence", min_width=10)
    for row in rows:
        mark = ("" if row["supported"] else "*") + (" [d]" if row["default_for"] else "")
        where = row["source"] if row["source"] == "bundled" else f"{row['source']}{', cached' if row['cached'] else ''}"
        tasks = "all" if len(row["tasks"]) == len(TASKS) else ",".join(row["tasks"])
        cells = (
            row["name"] + mark,
            tasks,
            row["arch"],
            f"x{row['scale']}",
            _params(row["params"]),
            _speed(row["cpu_s_per_mp"]),
            f"{row['size_mb']:.1f} MB" if row["size_mb"] is not None else "?",
            where,
            row["license"],
        )
        table.add_row(*(escape(str(c)) for c in cells))
    _out.print(table)


def _defaults_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="defaults per task", box=box.SIMPLE_HEAD,
                  caption="online: used when its file can be fetched (else the offline one, bundled with irx); "
                          "s/MP: CPU seconds per input megapixel")
    for column in ("task", "online", "licence", "params", "s/MP", "offline", "params ", "s/MP "):
        # Names fold rather than being cut short, so a narrow terminal still shows them whole.
        table.add_column(column, justify="right" if column.strip() in ("params", "s/MP") else "left", overflow="fold")
    for row in rows:
        cells = (row["task"], row["online"] or "none (see below)", row["licence"] or "-", _params(row["params"]),
                 _speed(row["cpu_s_per_mp"]), row["offline"] or "-", _params(row["offline_params"]),
                 _speed(row["offline_cpu_s_per_mp"]))
        table.add_row(*(escape(str(c)) for c in cells))
    return table


@models_app.command("info")
def info(name: Annotated[str, typer.Argument(help="A zoo name (see `irx models list`).")]) -> None:
    """Everything irx knows about one model."""
    cat = default_catalogue()
    record = cat.get(name)
    row = _row(record, cat, _costs())
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
    names: Annotated[list[str], typer.Argument(help=escape("Zoo names or hf://owner/repo/file[@revision]."))],
    force: Annotated[bool, typer.Option("--force", help="Download again even when a verified copy is cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fetch Hub models (into the Hugging Face cache) and url models, and verify their SHA-256."""
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
                    _err.print(escape(f"{record.name} is bundled with irx (nothing to download)"))
            typer.echo(f"{name}\t{path}")
        except IrxError as exc:
            failed += 1
            _err.print(f"[red]error[/red]: {escape(f'{name}: {exc}')}")
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
                table.add_row(escape(record.name), record.source, status, "-")
            continue
        problem = check_file(local, pinned=record.sha256, use_cache=False)
        if problem:
            bad += 1
            hint = "reinstall irx" if record.source == "bundled" else f"run `irx models download {record.name} --force`"
            table.add_row(escape(record.name), record.source, f"[red]MISMATCH[/red]: {escape(f'{problem}; {hint}')}",
                          escape(str(local)))
        else:
            table.add_row(escape(record.name), record.source, "[green]ok[/green]", escape(str(local)))
    _out.print(table)
    if bad:
        raise typer.Exit(1)


@models_app.command("path")
def path(
    name: Annotated[str, typer.Argument(help=escape("A zoo name, hf://owner/repo/file[@revision] or a file."))],
    offline: Annotated[bool, typer.Option("--offline", help="Never download; fail if the file is not cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Print the local path of a model's weights, downloading them first if needed."""
    resolved = resolve(name, offline=offline, quiet=quiet)
    if resolved.warning:
        _err.print(f"[yellow]warning[/yellow]: {escape(resolved.warning)}")
    typer.echo(str(resolved.path))


__all__ = ["models_app"]
