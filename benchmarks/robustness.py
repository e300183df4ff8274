"""Robustness of the bundled models: every degradation variant of each task, trained-on and held-out.

For each case, irx.evaluate.evaluate_variants scores the model and its classical baselines on every variant of
irx.degrade.EVAL_VARIANTS (the same images and per-image seeds), so a model that learned one kernel, one noise
or one haze shows it as a drop on the other rows. Writes benchmarks/results/robustness.json, robustness.md and
the tables into docs/results.md between its markers, plus one contact sheet per case (real photos degraded
with the case's held-out variant: degraded | restored | clean) in benchmarks/results/contact/.

    python benchmarks/robustness.py [--images DIR] [--limit N] [--only "upscale x2" ...]
    python benchmarks/robustness.py --only "upscale x2" --model "upscale x2=runs/x/export/m.safetensors"

--model LABEL=SPEC tries a candidate (e.g. a fine-tuned export) in place of the bundled model; its figures are
kept apart (robustness.candidates.json) so the bundled table always describes what ships.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from doc_markers import replace_between
from PIL import Image

from irx.degrade import EVAL_VARIANTS, make_degradation
from irx.degrade._util import to_uint8
from irx.evaluate import evaluate_variants, image_seed, read_image

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "eval" / "color"
DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
DOC_START, DOC_END = "<!-- robustness:start -->", "<!-- robustness:end -->"

# (label, task, bundled model, parameters for every variant, baselines)
CASES: list[tuple[str, str, str, dict, tuple[str, ...]]] = [
    ("denoise", "denoise", "laformer_small_denoise", {}, ("input", "nlm")),
    ("deblur", "deblur", "laformer_small_deblur", {}, ("input", "unsharp")),
    ("derain", "derain", "laformer_tiny_derain", {}, ("input", "median")),
    ("dehaze", "dehaze", "laformer_small_dehaze", {}, ("input", "dcp")),
    ("upscale x2", "upscale", "laformer_tiny_upscale_x2", {"scale": 2}, ("bicubic",)),
    ("upscale x4", "upscale", "laformer_tiny_upscale_x4", {"scale": 4}, ("bicubic",)),
    ("dejpeg", "dejpeg", "laformer_tiny_dejpeg", {}, ("input",)),
    ("lowlight", "lowlight", "laformer_tiny_lowlight", {}, ("input", "gamma")),
]

# Issue #12's targets: (case, variant names, reference method, required gain in dB). Every row of every case
# must also stay above its degraded input ("input", or bicubic for upscale).
TARGETS: list[tuple[str, tuple[str, ...], str, float]] = [
    ("upscale x2", ("bicubic", "area", "bilinear", "lanczos"), "bicubic", 1.5),
    ("upscale x4", ("bicubic", "area", "bilinear", "lanczos"), "bicubic", 0.8),
    ("dejpeg", ("q20 4:2:0", "q20 4:4:4"), "input", 1.0),
    ("denoise", ("gaussian s15", "gaussian s25", "gaussian s50"), "nlm", 3.0),
    ("deblur", ("motion 7", "motion 11", "motion 17"), "input", 1.5),
]

CONTACT_IMAGES = ("kodim23", "monarch", "tulips")
CROP = 192


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--only", nargs="*", help="case labels to run (default: all)")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=SPEC",
                        help="a candidate model for a case (results kept in robustness.candidates.json)")
    args = parser.parse_args()
    candidates = dict(item.split("=", 1) for item in args.model)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / ("robustness.candidates.json" if candidates else "robustness.json")
    results: dict[str, dict] = json.loads(target.read_text()) if target.exists() else {}
    for label, task, model, params, baselines in CASES:
        if args.only and label not in args.only:
            continue
        model = candidates.get(label, model)
        started = time.perf_counter()
        report = evaluate_variants(args.images, task, model=model, baselines=baselines, params=params,
                                   limit=args.limit, device="cpu", keep_crops=False)
        results[label] = {"task": task, "model": model, "params": params, "rows": report.rows(),
                          "seconds": time.perf_counter() - started}
        print(label, json.dumps({r["variant"]: r["psnr"] for r in report.rows()}), flush=True)
        contact_sheet(label, task, model, params, args.images)
        target.write_text(json.dumps(results, indent=2) + "\n")  # after each case: a crash keeps the rest
    tables = markdown(results) + "\n" + targets_markdown(results)
    print(tables)
    if not candidates:
        (RESULTS / "robustness.md").write_text(tables)
        replace_between(DOC, DOC_START, DOC_END, tables.strip())


def markdown(results: dict[str, dict]) -> str:
    """One table row per (case, variant): each method's RGB PSNR and the model's gain over each baseline."""
    lines = ["| case | variant | trained on | model | baselines (PSNR RGB) | gain over each |", "|---|---|---|---|---|---|"]
    for label, result in results.items():
        model = result["model"]
        for row in result["rows"]:
            others = {m: v for m, v in row["psnr"].items() if m != model}
            base = ", ".join(f"{m} {v:.2f}" for m, v in others.items())
            gains = ", ".join(f"{m} {g:+.2f}" for m, g in row.get("gain", {}).items())
            lines.append(f"| {label} | {row['variant']} | {'held out' if row['held_out'] else 'yes'} | "
                         f"{row['psnr'][model]:.2f} | {base} | {gains} |")
    return "\n".join(lines) + "\n"


def targets_markdown(results: dict[str, dict]) -> str:
    """Issue #12's targets per variant, and the "never below the degraded input" rule for every row."""
    lines = ["| case | variant | reference | gain | required | verdict |", "|---|---|---|---|---|---|"]
    for label, variants, reference, margin in TARGETS:
        if label not in results:
            continue
        rows = {r["variant"]: r for r in results[label]["rows"]}
        for name in variants:
            gain = rows[name]["gain"][reference]
            lines.append(f"| {label} | {name} | {reference} | {gain:+.2f} | +{margin:.1f} | "
                         f"{'met' if gain >= margin else 'missed'} |")
    below = [f"{label} / {row['variant']} ({row['gain'][ref]:+.2f} dB)"
             for label, result in results.items() for row in result["rows"]
             for ref in ("input", "bicubic") if ref in row.get("gain", {}) and row["gain"][ref] < 0]
    lines.append("")
    lines.append("Below the degraded input: " + ("; ".join(below) if below else "none."))
    return "\n".join(lines) + "\n"


def contact_sheet(label: str, task: str, model: str, params: dict, images: Path) -> Path | None:
    """Degraded | restored | clean centre crops of a few eval photos under the case's held-out variant."""
    import irx

    held_out = next((v for v in EVAL_VARIANTS[task] if v.held_out), EVAL_VARIANTS[task][0])
    deg = make_degradation(task, **{**params, **held_out.params})
    rows = []
    for stem in CONTACT_IMAGES:
        path = next(iter(sorted(images.glob(f"{stem}.*"))), None)
        if path is None:
            continue
        clean = read_image(path)
        s = deg.scale
        clean = clean[: clean.shape[0] // s * s, : clean.shape[1] // s * s]
        degraded = to_uint8(deg(clean, np.random.default_rng(image_seed(0, stem))))
        restored = np.asarray(irx.restore(degraded, task=task, model=model, device="cpu"))  # uint8 in, uint8 out
        shown = np.asarray(Image.fromarray(degraded).resize((clean.shape[1], clean.shape[0]), Image.NEAREST))
        cy, cx = clean.shape[0] // 2, clean.shape[1] // 2
        box = (slice(max(0, cy - CROP // 2), cy + CROP // 2), slice(max(0, cx - CROP // 2), cx + CROP // 2))
        rows.append(np.concatenate([shown[box], restored[box], to_uint8(clean)[box]], axis=1))
    if not rows:
        return None
    out = RESULTS / "contact" / f"{label.replace(' ', '_')}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


if __name__ == "__main__":
    main()
