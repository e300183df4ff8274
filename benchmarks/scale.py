"""Scaling out: the Ray engine vs the default (local) engine vs torchrun sharding, on this machine's CPUs.

Measures, in one short run (a minute or two):
1. images/s on a folder of small images with the bundled laformer_tiny_denoise: the local engine (one
   process, all cores), torchrun with 2 ranks (each takes every 2nd file), and the Ray engine with 2 CPU
   workers on a local cluster (started once; its start is timed on its own);
2. video frames/s on one FFV1 clip: the local engine (one process) vs the Ray engine, which cuts the video at
   keyframes and restores the parts on both workers (torchrun cannot split one video: one rank does it all);
3. the scheduling overhead: the same runs with a model that does almost nothing (an 8-channel DnCNN on
   16x16 images), so the time per image is what the engine itself costs; given in ms per image and as a
   ratio of the real model's time per image.
Results go to benchmarks/results/scale.json.

    python benchmarks/scale.py [--images 24] [--size 96] [--frames 32]
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

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from irx.run import restore_files
from irx.settings import RestoreSettings

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "laformer_tiny_denoise"


def _images(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def _clip(path: Path, frames: int, size: int) -> Path:
    import av  # noqa: PLC0415

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width = stream.height = size
        stream.pix_fmt = "bgr0"
        stream.codec_context.gop_size = 8
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), format="rgb24")
            frame = frame.reformat(format="bgr0")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _tiny_model(path: Path) -> Path:
    from spandrel.architectures.DnCNN.__arch.network_dncnn import DnCNN  # noqa: PLC0415

    torch.manual_seed(0)
    model = DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


class _Clock:
    """When the restore workers of the current Ray run were ready (their model loaded)."""

    ready: float = 0.0


def _watch_ray_workers() -> None:
    import irx.ray  # noqa: PLC0415

    first_words = irx.ray._first_words

    def timed(*args: object) -> object:
        answer = first_words(*args)
        _Clock.ready = time.perf_counter()
        return answer

    irx.ray._first_words = timed


def _timed(inputs: list[Path], output: Path, model: str, **settings: object) -> tuple[float, float]:
    """(wall seconds, seconds after the model was loaded) of one restore_files run."""
    start = time.perf_counter()
    summary = restore_files(inputs, model=model, output=output,
                            settings=RestoreSettings(device="cpu", offline=True, **settings))
    end = time.perf_counter()
    assert not summary.failed, summary.failed
    if settings.get("engine") == "ray":
        return end - start, end - _Clock.ready
    return end - start, summary.seconds  # the local pipeline's seconds start once the model is loaded


def _torchrun(folder: Path, output: Path, model: str) -> tuple[float, float]:
    """`torchrun --nproc-per-node 2 -m irx run ...`: wall seconds, and the slowest rank's seconds after loading."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "irx", "run",
               str(folder), "-o", str(output), "--model", model, "--device", "cpu", "--offline", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per rank, as Ray gives one per worker
    start = time.perf_counter()
    done = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    decoder, text, ranks = json.JSONDecoder(), done.stdout, []
    position = text.find("{")
    while position >= 0:
        summary, end = decoder.raw_decode(text, position)
        ranks.append(summary["seconds"])
        position = text.find("{", end)
    return wall, max(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    import ray  # noqa: PLC0415 - pip install 'irx[ray]'

    _watch_ray_workers()
    # One thread per process everywhere (Ray workers and torchrun ranks get one each): on shared cores a
    # second OpenMP thread made the local video run 7x slower in a trial, which would flatter the others.
    torch.set_num_threads(1)
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with two trainings: a busy machine)",
        "model": MODEL,
        "workers": 2,
        "threads_per_process": 1,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = _images(root / "in", args.images, args.size)
        small = _images(root / "small", args.images, 16)
        clip = _clip(root / "clip.mkv", args.frames, args.size)
        tiny = str(_tiny_model(root / "tiny.safetensors"))

        runs = {
            "local": _timed([folder], root / "out-local", MODEL),
            "torchrun_2_ranks": _torchrun(folder, root / "out-torchrun", MODEL),
        }
        video = {"local": _timed([clip], root / "local.mkv", MODEL, codec="ffv1")}
        tiny_runs = {"local": _timed([small], root / "tiny-local", tiny)}

        start = time.perf_counter()
        ray.init(num_cpus=3, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        cluster_start = time.perf_counter() - start
        try:
            runs["ray_2_workers"] = _timed([folder], root / "out-ray", MODEL, engine="ray", workers=2)
            video["ray_2_workers_split"] = _timed([clip], root / "ray.mkv", MODEL, engine="ray", workers=2, codec="ffv1")
            tiny_runs["ray_2_workers"] = _timed([small], root / "tiny-ray", tiny, engine="ray", workers=2)
        finally:
            ray.shutdown()

    n, frames = args.images, args.frames

    def rates(timings: dict[str, tuple[float, float]], count: int) -> dict[str, dict[str, float]]:
        return {name: {"per_s_after_start": round(count / steady, 2), "per_s_wall": round(count / wall, 2),
                       "start_s": round(wall - steady, 1)}
                for name, (wall, steady) in timings.items()}

    per_image = runs["local"][1] / n
    overhead = (tiny_runs["ray_2_workers"][1] - tiny_runs["local"][1]) / n
    results.update(
        {
            "images": {"count": n, "size": args.size, "images": rates(runs, n)},
            "video": {"frames": frames, "size": args.size, "frames": rates(video, frames)},
            "ray_cluster_start_s": round(cluster_start, 1),
            "overhead": {
                "tiny_model_images": rates(tiny_runs, n),
                "ray_ms_per_image": round(1000 * overhead, 1),
                "ratio_to_model_time_per_image": round(overhead / per_image, 3),
            },
            "notes": "per_s_after_start: once the model is loaded in every process/worker; start_s: starting the "
                     "workers (Ray actors, torchrun processes) and loading the model, not the Ray cluster's own start",
        }
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
