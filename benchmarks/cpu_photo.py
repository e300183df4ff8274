"""Big photos on a CPU: where a 12 MP photo's time and memory go, per task (issue #16, item 1).

Two parts, each case in a fresh subprocess so its peak resident memory (ru_maxrss) is its own:

1. Tile sweep: the engine's forward time per megapixel and peak RSS for the bundled LAformer-tiny and
   LAformer-small models on one photo, at several CPU tile sizes (and whole-image "auto"), with and
   without channels_last. This is what chose irx's CPU tile budget.
2. The `irx <task>` command on a 12 MP photo (4000x3000; for upscale, the input whose output is 12 MP),
   offline, for each task's offline default and for `--fast`: wall time and peak RSS.

The photo is the README's sample (examples/astronaut_noisy.png) resized to size, degraded per task.
Results go to benchmarks/results/cpu_photo.json; the markdown tables are printed for docs/results.md.

    python benchmarks/cpu_photo.py [--megapixels 12] [--tasks denoise,deblur] [--runs default,fast]
                                   [--sweep-megapixels 1] [--skip-sweep] [--skip-tasks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "examples" / "astronaut_noisy.png"

SWEEP_MODELS = ("laformer_tiny_denoise", "laformer_small_denoise")
SWEEP_TILES: tuple[int | str, ...] = (256, 512, 1024, "auto")

# Runs inside the subprocess: load the model, restore one image through the engine, report.
_SWEEP_CHILD = """
import json, resource, sys, time
import numpy as np, torch
import irx
model, tile, channels_last, path = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
image = np.load(path)
from irx.engine import Engine
descriptor = irx.load_model(model, device="cpu", offline=True)
engine = Engine(descriptor, device=torch.device("cpu"), tile=int(tile) if tile.isdigit() else tile,
                channels_last=channels_last)
engine.restore([image[:64, :64]])                       # warm-up outside the timing
start = time.perf_counter()
engine.restore([image])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
"""


def make_photo(megapixels: float, scale: int = 1) -> np.ndarray:
    """The sample photo resized to `megapixels` of output (4:3), as RGB uint8."""
    sample = cv2.cvtColor(cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    height = int(round(np.sqrt(megapixels * 1e6 * 3 / 4) / scale))
    width = int(round(height * 4 / 3))
    return cv2.resize(sample, (width, height), interpolation=cv2.INTER_CUBIC if height > sample.shape[0] else cv2.INTER_AREA)


def run_child(args: list[str]) -> str:
    """stdout of one subprocess (which reports its own figures as a JSON line)."""
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def sweep(workdir: Path, megapixels: float) -> list[dict]:
    image = make_photo(megapixels)
    path = workdir / "sweep.npy"
    np.save(path, image)
    rows = []
    for model in SWEEP_MODELS:
        for tile in SWEEP_TILES:
            for channels_last in (False, True):
                out = run_child([sys.executable, "-c", _SWEEP_CHILD, model, str(tile), "1" if channels_last else "0", str(path)])
                figures = json.loads(out.strip().splitlines()[-1])
                row = {
                    "model": model, "tile": tile, "channels_last": channels_last,
                    "megapixels": image.shape[0] * image.shape[1] / 1e6,
                    "s_per_mp": figures["seconds"] / (image.shape[0] * image.shape[1] / 1e6),
                    "peak_rss_mb": round(figures["peak_rss_mb"]), "threads": figures["threads"],
                }
                print(f"  sweep {model} tile={tile} channels_last={channels_last}: {row['s_per_mp']:.2f} s/MP, {row['peak_rss_mb']} MB", flush=True)
                rows.append(row)
    return rows


def degraded_input(task: str, megapixels: float, workdir: Path) -> Path:
    """The 12 MP photo degraded with the task's evaluation setting (for upscale: x2, so the output is 12 MP)."""
    from irx.degrade import make_degradation

    clean = make_photo(megapixels).astype(np.float32) / 255.0
    low, _ = make_degradation(task).degrade(clean, np.random.default_rng(0))
    path = workdir / f"{task}.png"
    cv2.imwrite(str(path), cv2.cvtColor((np.clip(low, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return path


def task_case(task: str, source: Path, workdir: Path, extra: list[str]) -> dict:
    out = workdir / f"{task}{'_fast' if extra else ''}_out.png"
    timed = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    args = [*timed, sys.executable, "-m", "irx", task, str(source), "-o", str(out), "--offline", "--overwrite", "--json", "-q", *extra]
    if task == "upscale":
        args += ["--scale", "2"]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"task": task, "flags": " ".join(extra), "error": proc.stderr.strip().splitlines()[-1:]}
    peak = float(proc.stderr.strip().splitlines()[-1]) / 1024 if timed else None
    summary = json.loads(proc.stdout)
    height, width = cv2.imread(str(source), cv2.IMREAD_UNCHANGED).shape[:2]
    return {
        "task": task, "flags": " ".join(extra), "model": summary.get("model"),
        "input": f"{width}x{height}", "seconds": round(wall, 1),
        "peak_rss_mb": round(peak) if peak is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--sweep-megapixels", type=float, default=1.0)
    parser.add_argument("--tasks", default="denoise,deblur,derain,dehaze,dejpeg,lowlight,upscale")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-tasks", action="store_true")
    parser.add_argument("--runs", default="default,fast", help="which of the offline default and --fast to run")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_photo.json")
    args = parser.parse_args()

    results: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
        "note": "2-core shared CPU; load average at start " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_sweep:
            results["tile_sweep"] = sweep(workdir, args.sweep_megapixels)
        if not args.skip_tasks:
            rows = []
            for task in args.tasks.split(","):
                source = degraded_input(task, args.megapixels, workdir)
                for extra in [[] if run == "default" else ["--fast"] for run in args.runs.split(",")]:
                    row = task_case(task, source, workdir, extra)
                    print(f"  {task} {' '.join(extra) or 'default'}: {row}", flush=True)
                    rows.append(row)
            results["tasks"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
