"""Pipeline throughput and memory: is the device kept busy, and does memory stay flat?

Measures, in one run:
1. images/s of the whole pipeline (decode threads -> engine -> encode threads) over a folder of N images,
   versus the engine's pure forward throughput on the same decoded images (same batch size);
2. peak resident memory of the whole `irx` command for folders of 100 and 1,000 images (must not grow with N);
3. peak resident memory for one 8000x6000 image restored with tiling.

Each memory figure comes from a fresh subprocess (ru_maxrss). Results go to benchmarks/results/pipeline.json
and a bar plot to benchmarks/results/pipeline.png.

    python benchmarks/pipeline.py [--images 64] [--size 256] [--skip-big]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results"


def make_model(path: Path, channels: int = 32) -> Path:
    """A small convolutional denoiser (DnCNN layout, 10 layers) spandrel can load."""
    from safetensors.torch import save_file
    from spandrel.architectures.DnCNN.__arch.network_dncnn import DnCNN

    torch.manual_seed(0)
    model = DnCNN(in_nc=3, out_nc=3, nc=channels, nb=10, act_mode="R")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def make_folder(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    for i in range(count):
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"img_{i:05d}.png", compress_level=1)
    return folder


class SimulatedAccelerator:
    """A model that costs no CPU: it sleeps as a GPU forward pass would (seconds per megapixel).

    On a 2-core machine a real CPU model competes with the decode and encode threads for the same cores;
    this stand-in shows what the pipeline's overlap does when compute happens elsewhere, as on a GPU.
    """

    scale = 1
    input_channels = 3
    output_channels = 3
    supports_half = False
    supports_bfloat16 = False
    size_requirements = None

    def __init__(self, seconds_per_megapixel: float) -> None:
        self.seconds_per_megapixel = seconds_per_megapixel

    def to(self, *args: object, **kwargs: object) -> "SimulatedAccelerator":
        return self

    def eval(self) -> "SimulatedAccelerator":
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds_per_megapixel * x.shape[0] * x.shape[2] * x.shape[3] / 1e6)
        return x


def throughput(descriptor: object, folder: Path, out: Path, batch: int) -> dict[str, float]:
    from irx.engine import Engine
    from irx.media.image_io import read_image
    from irx.media.sources import plan_jobs
    from irx.pipeline import PipelineOptions, run_pipeline

    engine = Engine(descriptor, device="cpu", tile=0, batch_size=batch)
    images = [read_image(p).pixels for p in sorted(folder.glob("*.png"))]
    engine.restore(images[:batch])  # warm-up
    start = time.perf_counter()
    engine.restore(images)
    forward = len(images) / (time.perf_counter() - start)

    jobs = plan_jobs([str(folder)], suffix="denoise", output=out).jobs
    start = time.perf_counter()
    summary = run_pipeline(jobs, [engine], PipelineOptions())
    pipeline = len(summary.processed) / (time.perf_counter() - start)
    return {"forward_images_per_s": forward, "pipeline_images_per_s": pipeline, "ratio": pipeline / forward}


def peak_rss_of_cli(args: list[str]) -> float:
    """Peak resident memory (MiB) of `python -m irx ARGS` in a fresh process."""
    code = (
        "import resource, sys\n"
        "from irx.cli.main import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--skip-big", action="store_true", help="skip the 8000x6000 image")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": "cpu",
    }
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        model = make_model(tmp / "dncnn32.safetensors")
        folder = make_folder(tmp / "in", args.images, args.size)
        from irx.api import load_model

        report["throughput"] = {"images": args.images, "size": args.size, "batch": args.batch,
                                **throughput(load_model(str(model), device="cpu"), folder, tmp / "out", args.batch)}
        print(json.dumps(report["throughput"], indent=2))
        # 0.4 s per megapixel: the CPU model's order of magnitude, spent off the CPU as on a GPU.
        report["throughput_simulated_accelerator"] = {
            "images": args.images, "size": args.size, "batch": args.batch, "seconds_per_megapixel": 0.4,
            **throughput(SimulatedAccelerator(0.4), folder, tmp / "out_sim", args.batch)}
        print(json.dumps(report["throughput_simulated_accelerator"], indent=2))

        memory = {}
        for count in (100, 1000):
            small = make_folder(tmp / f"mem{count}", count, 64)
            memory[f"{count}_images_peak_mib"] = peak_rss_of_cli(
                ["denoise", str(small), "-o", str(tmp / f"memout{count}"), "--model", str(model), "-q", "--device", "cpu"]
            )
        if not args.skip_big:
            # A 4-channel model keeps 48 megapixels of CPU compute within minutes; memory is what is measured.
            light = make_model(tmp / "dncnn4.safetensors", channels=4)
            big = tmp / "big.png"
            rng = np.random.default_rng(1)
            Image.fromarray((rng.random((6000, 8000, 3)) * 255).astype(np.uint8)).save(big, compress_level=1)
            memory["8000x6000_tiled_peak_mib"] = peak_rss_of_cli(
                ["denoise", str(big), "-o", str(tmp / "big_out.png"), "--model", str(light), "-q", "--device", "cpu",
                 "--tile", "512"]
            )
        report["memory"] = memory
        print(json.dumps(memory, indent=2))

    (RESULTS / "pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        t, sim = report["throughput"], report["throughput_simulated_accelerator"]
        left.bar(["CPU model\nforward", "CPU model\npipeline", "simulated GPU\nforward", "simulated GPU\npipeline"],
                 [t["forward_images_per_s"], t["pipeline_images_per_s"],
                  sim["forward_images_per_s"], sim["pipeline_images_per_s"]])
        left.set_ylabel("images/s")
        left.set_title(f"{args.images} images {args.size}px: ratios {t['ratio']:.2f} / {sim['ratio']:.2f}")
        right.bar(list(memory), list(memory.values()))
        right.set_ylabel("peak RSS (MiB)")
        right.tick_params(axis="x", labelrotation=20)
        fig.tight_layout()
        fig.savefig(RESULTS / "pipeline.png", dpi=100)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
