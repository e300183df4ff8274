"""Quality of the bundled models against the classical baselines, measured in one run.

For every task: degrade each clean image of the evaluation folder (seeded, per image name), restore it with
the bundled model and with the task's baselines, and score PSNR/SSIM with BasicSR's conventions (RGB and Y,
crop border = scale for SR). Writes benchmarks/results/quality.json, the markdown tables
benchmarks/results/quality.md, and the same tables into docs/results.md between its quality markers.

    python benchmarks/quality.py [--images ../shared/data/photos/eval/color] [--limit N] [--bm3d-limit 4]
    python benchmarks/quality.py --only dehaze "dehaze, tiny"     # rerun some cases, keep the others

BM3D takes minutes per image on a CPU, so it runs on the first --bm3d-limit images only (its own table row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# benchmarks/ is on sys.path when a benchmark runs as a script.
from doc_markers import replace_between

from irx.evaluate import evaluate

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "eval" / "color"

# (label, task, bundled model, degradation parameters, baselines)
CASES: list[tuple[str, str, str, dict, tuple[str, ...]]] = [
    ("denoise sigma 15", "denoise", "laformer_small_denoise", {"sigma": 15}, ("input", "nlm")),
    ("denoise sigma 25", "denoise", "laformer_small_denoise", {"sigma": 25}, ("input", "nlm")),
    ("denoise sigma 50", "denoise", "laformer_small_denoise", {"sigma": 50}, ("input", "nlm")),
    ("upscale x2", "upscale", "laformer_tiny_upscale_x2", {"scale": 2}, ("bicubic",)),
    ("upscale x4", "upscale", "laformer_tiny_upscale_x4", {"scale": 4}, ("bicubic",)),
    ("dejpeg quality 10", "dejpeg", "laformer_tiny_dejpeg", {"quality": 10}, ("input",)),
    ("dejpeg quality 20", "dejpeg", "laformer_tiny_dejpeg", {"quality": 20}, ("input",)),
    ("dejpeg quality 40", "dejpeg", "laformer_tiny_dejpeg", {"quality": 40}, ("input",)),
    ("deblur (motion 17 px)", "deblur", "laformer_small_deblur", {}, ("input", "unsharp", "wiener")),
    ("derain", "derain", "laformer_tiny_derain", {}, ("input", "median", "guided")),
    ("dehaze", "dehaze", "laformer_small_dehaze", {}, ("input", "dcp")),
    ("lowlight", "lowlight", "laformer_tiny_lowlight", {}, ("input", "clahe", "gamma")),
    # The fast alternatives to the LAformer-small defaults (4x less CPU time).
    ("denoise sigma 25, tiny", "denoise", "laformer_tiny_denoise", {"sigma": 25}, ("input",)),
    ("deblur (motion 17 px), tiny", "deblur", "laformer_tiny_deblur", {}, ("input",)),
    ("dehaze, tiny", "dehaze", "laformer_tiny_dehaze", {}, ("input",)),
]

# Issue #6's quality targets: (case, [(reference method or "best classical", required margin in dB)]).
# "best classical" is the best non-input baseline of the case, except oracles: the Wiener filter is
# given the true blur kernel, so it is an upper reference, not a blind competitor.
ORACLES = {"wiener"}
TARGETS: list[tuple[str, list[tuple[str, float]]]] = [
    ("denoise sigma 25", [("nlm", 1.0)]),
    ("upscale x2", [("bicubic", 1.5)]),
    ("upscale x4", [("bicubic", 0.8)]),
    ("dejpeg quality 20", [("input", 1.0)]),
    ("deblur (motion 17 px)", [("input", 2.0), ("best classical", 0.0)]),
    ("derain", [("input", 2.0), ("best classical", 0.0)]),
    ("dehaze", [("input", 2.0), ("best classical", 0.0)]),
    ("lowlight", [("input", 2.0), ("best classical", 0.0)]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--bm3d-limit", type=int, default=0, help="images to run BM3D on (sigma 25 only)")
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--part", help="write results/quality.PART.json only (for runs split across processes)")
    parser.add_argument("--combine", action="store_true", help="merge results/quality.*.json into quality.json/.md")
    args = parser.parse_args()
    if args.combine:
        results = {}
        for part in sorted(RESULTS.glob("quality.*.json")):
            results.update(json.loads(part.read_text()))
        write(results)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    previous = RESULTS / "quality.json"
    if args.only and previous.exists():
        # A partial run (--only) updates its cases and keeps the others' last figures.
        results = json.loads(previous.read_text())
    for label, task, model, params, baselines in CASES:
        if args.only and label not in args.only:
            continue
        started = time.perf_counter()
        report = evaluate(args.images, task, model=model, baselines=baselines, params=params, limit=args.limit,
                          device="cpu", keep_crops=False)
        results[label] = {"task": task, "model": model, "params": params, "means": report.means(),
                          "seconds": time.perf_counter() - started, "images": len({r.image for r in report.rows})}
        print(label, json.dumps(results[label]["means"]), flush=True)
    if args.bm3d_limit:
        report = evaluate(args.images, "denoise", model="laformer_small_denoise", baselines=("nlm", "bm3d"),
                          params={"sigma": 25}, limit=args.bm3d_limit, device="cpu", keep_crops=False)
        results["denoise sigma 25 (BM3D subset)"] = {"task": "denoise", "model": "laformer_small_denoise",
                                                     "params": {"sigma": 25}, "means": report.means(),
                                                     "images": args.bm3d_limit}
    if args.part:
        (RESULTS / f"quality.{args.part}.json").write_text(json.dumps(results, indent=2) + "\n")
    else:
        write(results)


def write(results: dict[str, dict]) -> None:
    order = [label for label, *_ in CASES]
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    table, targets = markdown(results), targets_markdown(results)
    (RESULTS / "quality.md").write_text(table + "\n" + targets)
    print(table)
    print(targets)
    # The same tables in docs/results.md, so the docs quote this run.
    intro = ("The targets of issue #6, as computed from the table (RGB PSNR; the Wiener filter is given the true "
             "kernel, so it is an oracle, not the classical competitor):")
    replace_between(DOC, DOC_START, DOC_END, f"{table}\n{intro}\n\n{targets}".strip())


DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
DOC_START, DOC_END = "<!-- quality:start -->", "<!-- quality:end -->"


def markdown(results: dict[str, dict]) -> str:
    lines = ["| case | images | method | PSNR RGB | PSNR Y | SSIM RGB | s/image |", "|---|---|---|---|---|---|---|"]
    for label, result in results.items():
        for method, m in result["means"].items():
            lines.append(
                f"| {label} | {result['images']} | {method} | {m.get('psnr', float('nan')):.2f} | "
                f"{m.get('psnr_y', float('nan')):.2f} | {m.get('ssim', float('nan')):.4f} | "
                f"{m.get('seconds', float('nan')):.2f} |"
            )
    return "\n".join(lines) + "\n"


def targets_markdown(results: dict[str, dict]) -> str:
    """One row per target: the model's RGB PSNR, the reference's, the margin asked for and got."""
    lines = ["| case | model | reference | model PSNR | reference PSNR | gain | required | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for label, wanted in TARGETS:
        if label not in results:
            continue
        model, means = results[label]["model"], results[label]["means"]
        for reference, margin in wanted:
            if reference == "best classical":
                classical = {k: v["psnr"] for k, v in means.items() if k not in {model, "input", *ORACLES}}
                if not classical:
                    continue
                reference = max(classical, key=classical.__getitem__)
            gain = means[model]["psnr"] - means[reference]["psnr"]
            verdict = "met" if gain >= margin and gain > 0 else "missed"
            lines.append(f"| {label} | {model} | {reference} | {means[model]['psnr']:.2f} | "
                         f"{means[reference]['psnr']:.2f} | {gain:+.2f} | +{margin:.1f} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
