"""Evaluation: degrade clean images (or read degraded/clean pairs), restore them with a model
and classical baselines, and score everything with paper-comparable PSNR/SSIM (RGB and Y).

    report = evaluate("photos/eval/color", "denoise", model="laformer-denoise",
                      baselines=("input", "nlm"), params={"sigma": 25})
    print(report.means())

Reproducibility: each image gets its own random generator, seeded from (seed, file stem), so
an image's degradation is the same whatever the order, the --limit or the other files.
Degraded inputs are quantised to uint8 (as if saved as PNG) before anything restores them, so
synthetic evaluation and --pairs evaluation of saved files agree.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .baselines import BASELINES, BaselineUnavailable, baseline
from .degrade import make_degradation
from .degrade._util import to_uint8
from .errors import InputError, ModelError, UsageError
from .media.atomic import atomic_write_with
from .media.image_io import read_image as media_read_image
from .metrics import psnr, ssim
from .tasks import Variant, get_task

__all__ = ["EvalReport", "EvalRow", "RobustnessReport", "evaluate", "evaluate_variants",
           "image_seed", "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
METRICS = ("psnr", "ssim", "psnr_y", "ssim_y", "seconds")


@dataclass
class EvalRow:
    """Scores of one method on one image (seconds = wall time of the restoration)."""

    image: str
    method: str
    psnr: float
    ssim: float
    psnr_y: float
    ssim_y: float
    seconds: float


@dataclass
class EvalReport:
    """Per-image rows, means per method, and what could not run (method -> reason)."""

    task: str
    params: dict[str, Any]
    seed: int
    crop_border: int
    methods: list[str]
    rows: list[EvalRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    # image -> [(label, uint8 HWC crop)], for the HTML report; not part of JSON/CSV.
    crops: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict, repr=False)

    def means(self) -> dict[str, dict[str, float]]:
        """Mean of each metric per method (PSNR is inf if any image was reproduced exactly)."""
        out: dict[str, dict[str, float]] = {}
        for m in self.methods:
            rows = [r for r in self.rows if r.method == m]
            if rows:
                out[m] = {k: float(np.mean([getattr(r, k) for r in rows])) for k in METRICS}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; non-finite numbers (inf PSNR of identical images) become null."""
        return _jsonable({
            "task": self.task, "params": self.params, "seed": self.seed,
            "crop_border": self.crop_border, "n_images": len(self.images),
            "methods": self.methods, "means": self.means(), "skipped": self.skipped,
            "rows": [asdict(r) for r in self.rows],
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write_csv(self, path: str | Path) -> None:
        """One row per (image, method), then one "(mean)" row per method."""
        def write(p: Path) -> None:
            with open(p, "w", newline="", encoding="utf-8") as fh:
                wr = csv.writer(fh)
                wr.writerow(["image", "method", *METRICS])
                for r in self.rows:
                    wr.writerow([r.image, r.method, *(_fmt(getattr(r, k)) for k in METRICS)])
                for m, vals in self.means().items():
                    wr.writerow(["(mean)", m, *(_fmt(vals[k]) for k in METRICS)])
        atomic_write_with(path, write, overwrite=True)

    def rich_table(self):  # -> rich.table.Table
        from rich.table import Table

        desc = ", ".join(f"{k}={v}" for k, v in self.params.items())
        n = len(self.images)
        table = Table(title=f"{self.task} ({desc}) on {n} image{'s' if n != 1 else ''}"
                            + (f", crop {self.crop_border}" if self.crop_border else ""))
        table.add_column("method")
        for col in ("PSNR", "SSIM", "PSNR-Y", "SSIM-Y", "s/image"):
            table.add_column(col, justify="right")
        for m, v in self.means().items():
            table.add_row(m, f"{v['psnr']:.2f}", f"{v['ssim']:.4f}", f"{v['psnr_y']:.2f}",
                          f"{v['ssim_y']:.4f}", f"{v['seconds']:.3f}")
        return table

    def write_html(self, path: str | Path) -> None:
        """A self-contained HTML page: the means table and, per image, degraded / restored /
        clean crops side by side (PNG, base64-embedded) with each method's PSNR."""
        atomic_write_with(path, lambda p: p.write_text(_html(self), encoding="utf-8"), overwrite=True)


def image_seed(seed: int, name: str) -> list[int]:
    """Seed material for one image: the run seed plus a stable hash of the file stem."""
    digest = hashlib.sha256(Path(name).stem.encode("utf-8")).digest()
    return [int(seed), int.from_bytes(digest[:8], "little")]


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 HWC in [0,1] (RGB, or 1 channel for grey), EXIF orientation applied."""
    return media_read_image(path).pixels


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _model_fn(model: Any, task: str, scale: int | None, device: str
              ) -> tuple[str, Callable[[np.ndarray], np.ndarray]] | None:
    """(label, image -> image) for a model spec string, a spandrel descriptor or a callable."""
    if model is None:
        return None
    label = "model"
    if isinstance(model, (str, Path)):
        from . import api

        label = str(model)
        model = api.load_model(str(model), task=task,
                               scale=scale if get_task(task).has_scale else None, device=device)
    # A loaded model (spandrel descriptor, or irx's TorchScript wrapper) has .model and .scale
    # and takes tensors; anything else callable is taken to map numpy images to numpy images.
    if hasattr(model, "model") and hasattr(model, "scale"):
        from . import api

        desc = model
        if label == "model":
            label = getattr(getattr(desc, "architecture", None), "name", "model")
        return label, lambda img: api.restore(img, task=task, model=desc, device=device)
    if callable(model):
        return label, model
    raise UsageError("model must be a model name/path, a loaded model, or a function")


def _pairs(clean_dir: Path, pairs_dir: Path | None) -> tuple[list[tuple[str, Path, Path | None]], int]:
    """[(stem, clean path, degraded path or None)], number of clean images without a pair."""
    clean = _list_images(clean_dir)
    if not clean:
        raise InputError(f"no images in {clean_dir}")
    if pairs_dir is None:
        return [(p.stem, p, None) for p in clean], 0
    degraded = {p.stem: p for p in _list_images(pairs_dir)}
    pairs = [(p.stem, p, degraded[p.stem]) for p in clean if p.stem in degraded]
    if not pairs:
        raise InputError(f"no file in {pairs_dir} has the same name (stem) as one in "
                         f"{clean_dir}; pairs are matched by file name without extension")
    return pairs, len(clean) - len(pairs)


def _crop_box(clean: np.ndarray, size: int) -> tuple[int, int, int]:
    """(y, x, size) of the most detailed square of the clean image, to show in the report."""
    h, w = clean.shape[:2]
    size = min(size, h, w)
    grey = clean.mean(axis=2)
    mag = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    integral = cv2.integral(mag)
    best, by, bx = -1.0, 0, 0
    step = max(1, size // 4)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            s = (integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x]
                 + integral[y, x])
            if s > best:
                best, by, bx = s, y, x
    return by, bx, size


def evaluate(
    clean_dir: str | Path,
    task: str,
    model: Any = None,
    baselines: Iterable[str] = ("input",),
    params: dict[str, Any] | None = None,
    seed: int = 0,
    pairs_dir: str | Path | None = None,
    *,
    limit: int | None = None,
    device: str = "auto",
    crop_border: int | None = None,
    crop_size: int = 128,
    keep_crops: bool = True,
    on_image: Callable[[str], None] | None = None,
) -> EvalReport:
    """Score a model and/or classical baselines on the images of `clean_dir`.

    model: None, a model spec for irx.api.load_model, a loaded spandrel descriptor, or any
    callable float32 HWC -> float32 HWC. baselines: names from irx.baselines.BASELINES[task],
    or "all". params: degradation parameters overriding DEFAULT_EVAL_PARAMS[task] (synthetic
    mode; in pairs mode only "scale" and "sigma" are used, the latter for NLM/BM3D).
    crop_border defaults to the scale for upscale and 0 otherwise.
    """
    spec = get_task(task)
    names = list(baselines)
    if "all" in names:
        names = list(BASELINES[task])
    for name in names:
        if name not in BASELINES[task]:
            raise UsageError(f"no baseline {name!r} for {task}; choose from "
                             f"{', '.join(BASELINES[task])} or all")
    names = list(dict.fromkeys(names))
    given = {k: v for k, v in (params or {}).items() if v is not None}
    pairs_mode = pairs_dir is not None
    deg = None if pairs_mode else make_degradation(task, **given)
    scale = deg.scale if deg else int(given.get("scale") or 0)
    report_params = dict(deg.params) if deg else dict(given)

    pairs, unpaired = _pairs(Path(clean_dir), Path(pairs_dir) if pairs_mode else None)
    if limit is not None:
        pairs = pairs[: max(0, limit)]
    if pairs_mode and spec.has_scale and not scale and pairs:
        # The model must be loaded for the right factor: infer it from the first pair.
        _, s = _match_pair(read_image(pairs[0][1]), read_image(pairs[0][2]), task, 0, pairs[0][0])
        scale = s
    fn = _model_fn(model, task, scale or None, device)
    methods = ([fn[0]] if fn else []) + names
    report = EvalReport(task, report_params, seed, 0, methods)
    if unpaired:
        report.skipped["(images)"] = f"{unpaired} clean image(s) had no degraded pair"

    for stem, clean_path, deg_path in pairs:
        if on_image:
            on_image(stem)
        clean = read_image(clean_path)
        info: dict[str, Any] = {}
        if deg is not None:
            s = deg.scale
            clean = clean[: clean.shape[0] // s * s, : clean.shape[1] // s * s]
            degraded, info = deg.degrade(clean, np.random.default_rng(image_seed(seed, stem)))
            degraded = to_uint8(degraded).astype(np.float32) / 255.0
        else:
            degraded = read_image(deg_path)
            clean, s = _match_pair(clean, degraded, task, scale, stem)
            scale = scale or s
            info = {k: given[k] for k in ("sigma",) if k in given}
        if degraded.shape[2] != clean.shape[2]:
            raise InputError(f"{stem}: degraded and clean images differ in channels")
        border = crop_border if crop_border is not None else (scale if spec.has_scale else 0)
        report.crop_border = border
        report.images.append(stem)
        bparams: dict[str, Any] = {"out_hw": clean.shape[:2]}
        if spec.has_scale:
            bparams["scale"] = scale
        for key in ("sigma", "noise", "kernel"):
            if key in info:
                bparams[key] = info[key]

        outputs: list[tuple[str, np.ndarray]] = []
        for method in methods:
            if method in report.skipped:
                continue
            t0 = time.perf_counter()
            try:
                if fn and method == fn[0]:
                    out = np.asarray(fn[1](degraded), np.float32)
                else:
                    out = baseline(method, task, degraded, **bparams)
            except BaselineUnavailable as exc:
                report.skipped[method] = str(exc)
                continue
            seconds = time.perf_counter() - t0
            if out.ndim == 2:
                out = out[:, :, None]
            if out.shape != clean.shape:
                raise ModelError(f"{method} returned {out.shape[:2]} for {stem}, expected "
                                 f"{clean.shape[:2]}; check the model's task and scale")
            report.rows.append(EvalRow(
                stem, method,
                psnr(out, clean, border), ssim(out, clean, border),
                psnr(out, clean, border, y_channel=True), ssim(out, clean, border, y_channel=True),
                seconds))
            outputs.append((method, out))
        if keep_crops:
            report.crops[stem] = _crops(clean, degraded, outputs, scale, crop_size)
    report.methods = [m for m in methods if m not in report.skipped]
    return report


@dataclass
class RobustnessReport:
    """One EvalReport per degradation variant, each marked as trained on or held out."""

    task: str
    model: str | None
    variants: list[Variant]
    reports: list[EvalReport]

    def rows(self) -> list[dict[str, Any]]:
        """Per variant: held_out, each method's mean RGB PSNR/SSIM, and the model's gain over
        each baseline (dB)."""
        out = []
        for variant, report in zip(self.variants, self.reports, strict=True):
            means = report.means()
            row: dict[str, Any] = {"variant": variant.name, "held_out": variant.held_out,
                                   "params": report.params,
                                   "psnr": {m: v["psnr"] for m, v in means.items()},
                                   "ssim": {m: v["ssim"] for m, v in means.items()}}
            if self.model in means:
                row["gain"] = {m: means[self.model]["psnr"] - v["psnr"]
                               for m, v in means.items() if m != self.model}
            out.append(row)
        return out

    def to_json(self) -> str:
        return json.dumps(_jsonable({"task": self.task, "model": self.model,
                                     "variants": self.rows()}), indent=2)

    def rich_table(self):  # -> rich.table.Table
        from rich.table import Table

        rows = self.rows()
        methods = list(rows[0]["psnr"]) if rows else []
        table = Table(title=f"{self.task}: PSNR (RGB) per degradation variant")
        table.add_column("variant")
        table.add_column("trained on")
        for m in methods:
            table.add_column(m, justify="right")
        for row in rows:
            table.add_row(row["variant"], "held out" if row["held_out"] else "yes",
                          *(f"{row['psnr'][m]:.2f}" for m in methods))
        return table


def evaluate_variants(
    clean_dir: str | Path,
    task: str,
    model: Any = None,
    baselines: Iterable[str] = ("input",),
    params: dict[str, Any] | None = None,
    variants: Iterable[Variant] | None = None,
    **kwargs: Any,
) -> RobustnessReport:
    """Evaluate on every robustness variant of `task` (irx.degrade.EVAL_VARIANTS), on the same
    images and seeds, so a model tuned to one kernel or noise shows it as a drop on the others.

    params (e.g. {"scale": 4}) apply to every variant; other keyword arguments go to evaluate().
    """
    chosen = list(variants if variants is not None else get_task(task).variants)
    reports = [evaluate(clean_dir, task, model=model, baselines=baselines,
                        params={**(params or {}), **v.params}, **kwargs) for v in chosen]
    name = None
    if model is not None and reports:
        name = next((m for m in reports[0].methods if m not in BASELINES[task]), None)
    return RobustnessReport(task, name, chosen, reports)


def _match_pair(clean: np.ndarray, degraded: np.ndarray, task: str, scale: int, stem: str
                ) -> tuple[np.ndarray, int]:
    """Check a (clean, degraded) pair's sizes; for upscale, crop clean to scale x LR size."""
    (ch, cw), (dh, dw) = clean.shape[:2], degraded.shape[:2]
    if not get_task(task).has_scale:
        if (ch, cw) != (dh, dw):
            raise InputError(f"{stem}: degraded is {dw}x{dh} but clean is {cw}x{ch}")
        return clean, 1
    s = scale or max(1, round(ch / dh))
    if ch < dh * s or cw < dw * s:
        raise InputError(f"{stem}: clean {cw}x{ch} is smaller than {s}x the degraded "
                         f"{dw}x{dh}; check --scale")
    return clean[: dh * s, : dw * s], s


def _crops(clean: np.ndarray, degraded: np.ndarray, outputs: list[tuple[str, np.ndarray]],
           scale: int, size: int) -> list[tuple[str, np.ndarray]]:
    y, x, n = _crop_box(clean, size)
    if degraded.shape[:2] != clean.shape[:2]:  # low-res input: show it enlarged (nearest)
        degraded = cv2.resize(degraded, (clean.shape[1], clean.shape[0]),
                              interpolation=cv2.INTER_NEAREST).reshape(clean.shape)
    tiles = [("degraded", degraded)] + outputs + [("clean", clean)]
    return [(label, to_uint8(img[y:y + n, x:x + n])) for label, img in tiles]


def _png_b64(img: np.ndarray) -> str:
    bgr = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _html(report: EvalReport) -> str:
    esc = html.escape
    desc = ", ".join(f"{k}={v}" for k, v in report.params.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>irx eval: {esc(report.task)}</title>",
        ("<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
         "td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}"
         "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:.3em}"
         "figure img{width:256px;image-rendering:pixelated}figcaption{font-size:.85em}</style>"),
        "</head><body>",
        f"<h1>irx eval: {esc(report.task)}</h1>",
        (f"<p>{esc(desc)}; seed {report.seed}; {len(report.images)} images; "
         f"crop border {report.crop_border}. PSNR/SSIM on uint8, Y = BT.601 (BasicSR).</p>"),
        ("<table><tr><th>method</th><th>PSNR</th><th>SSIM</th><th>PSNR-Y</th><th>SSIM-Y</th>"
         "<th>s/image</th></tr>"),
    ]
    for m, v in report.means().items():
        parts.append(f"<tr><td>{esc(m)}</td><td>{v['psnr']:.2f}</td><td>{v['ssim']:.4f}</td>"
                     f"<td>{v['psnr_y']:.2f}</td><td>{v['ssim_y']:.4f}</td>"
                     f"<td>{v['seconds']:.3f}</td></tr>")
    parts.append("</table>")
    for m, why in report.skipped.items():
        parts.append(f"<p>Skipped {esc(m)}: {esc(why)}</p>")
    scores = {(r.image, r.method): r for r in report.rows}
    for stem, tiles in report.crops.items():
        parts.append(f"<h2>{esc(stem)}</h2><div>")
        for label, img in tiles:
            row = scores.get((stem, label))
            cap = esc(label) + (f"<br>{row.psnr:.2f} dB / {row.ssim:.3f}" if row else "")
            parts.append(f"<figure><img src='data:image/png;base64,{_png_b64(img)}' "
                         f"alt='{esc(label)}'><figcaption>{cap}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _fmt(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.6g}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj
