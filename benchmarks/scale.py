"""Scaling out: the Ray engine vs the default (local) engine vs torchrun sharding, on this machine's CPUs.

Measures, in one short run, with the bundled laformer_tiny_denoise and one thread per process:
1. images/s on a folder of small images: the local engine (one process), torchrun with 2 ranks (each takes
   every 2nd file) and the Ray engine with 2 CPU workers on a local cluster;
2. video frames/s on one FFV1 clip (in the same runs, after the images): the local engine vs the Ray engine,
   which cuts the video at keyframes and restores the parts on both workers (torchrun cannot split one
   video: one rank does it all);
3. the scheduling overhead: the local engine and the Ray engine with one worker, with a model that does
   almost nothing (an 8-channel DnCNN on 16x16 images), so the difference per image is what Ray's tasks,
   actor calls and object transfers cost; in ms per image and as a ratio of the real model's time per image.
Rates count from when every process/worker has loaded the model; the start-up times are given apart
(starting Ray worker processes and torchrun ranks costs tens of seconds on a busy 2-core machine).
Results go to benchmarks/results/scale.json.

    python benchmarks/scale.py [--images 24] [--size 96] [--frames 32] [--tiny-images 120]
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
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from irx.pipeline import SilentReporter
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


class _Times(SilentReporter):
    """When each file was done."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}

    def file_done(self, name: str) -> None:
        self.done[name] = time.perf_counter()


def _timed(inputs: list[Path], output: Path, model: str, **settings: object) -> dict[str, float]:
    """One restore_files run: wall seconds, seconds to the model being loaded, and when its images and its video were done."""
    times = _Times()
    start = time.perf_counter()
    summary = restore_files(inputs, model=model, output=output, reporter=times,
                            settings=RestoreSettings(device="cpu", offline=True, **settings))
    end = time.perf_counter()
    assert not summary.failed, summary.failed
    ready = _Clock.ready if settings.get("engine") == "ray" else end - summary.seconds
    images = [t for name, t in times.done.items() if not name.endswith(".mkv")]
    videos = [t for name, t in times.done.items() if name.endswith(".mkv")]
    images_done = max(images, default=ready)
    return {"wall": end - start, "start": ready - start, "images": images_done - ready,
            "video": (max(videos) - images_done) if videos else 0.0}


def _warm(_: int) -> None:
    import irx.media.image_io  # noqa: F401, PLC0415
    import irx.ray  # noqa: F401, PLC0415


def _warm_task_workers(ray: Any) -> None:
    """Start the processes that run decode/encode tasks before timing: Ray keeps them for later jobs."""
    task = ray.remote(num_cpus=1)(_warm)
    ray.get([task.remote(i) for i in range(6)])


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
    parser.add_argument("--tiny-images", type=int, default=120)
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
        small = _images(root / "small", args.tiny_images, 16)
        clip = _clip(root / "clip.mkv", args.frames, args.size)
        tiny = str(_tiny_model(root / "tiny.safetensors"))

        # The local engine's seconds start once the model is loaded (summary.seconds); Ray's once every
        # worker has loaded it (_Clock); a run does the images first, then the video.
        local = _timed([folder, clip], root / "out-local", MODEL, codec="ffv1")
        torchrun_wall, torchrun_steady = _torchrun(folder, root / "out-torchrun", MODEL)
        tiny_local = _timed([small], root / "tiny-local", tiny)

        start = time.perf_counter()
        ray.init(num_cpus=3, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        cluster_start = time.perf_counter() - start
        _warm_task_workers(ray)
        try:
            on_ray = _timed([folder, clip], root / "out-ray", MODEL, engine="ray", workers=2, codec="ffv1")
            # One worker, as the local engine has one: the difference per image is the engine's own cost.
            tiny_ray = _timed([small], root / "tiny-ray", tiny, engine="ray", workers=1)
        finally:
            ray.shutdown()

    n, frames, tiny_n = args.images, args.frames, args.tiny_images
    overhead = (tiny_ray["images"] - tiny_local["images"]) / tiny_n
    results.update(
        {
            "images": {
                "count": n,
                "size": args.size,
                "images_per_s": {"local": round(n / local["images"], 2),
                                 "torchrun_2_ranks": round(n / torchrun_steady, 2),
                                 "ray_2_workers": round(n / on_ray["images"], 2)},
            },
            "video": {
                "frames": frames,
                "size": args.size,
                "frames_per_s": {"local": round(frames / local["video"], 2),
                                 "ray_2_workers_split": round(frames / on_ray["video"], 2)},
            },
            "start_s": {"local_model_load": round(local["start"], 1), "torchrun_ranks": round(torchrun_wall - torchrun_steady, 1),
                        "ray_workers": round(on_ray["start"], 1), "ray_local_cluster": round(cluster_start, 1)},
            "overhead": {
                "tiny_model": f"{tiny_n} images of 16x16, DnCNN with 8 channels",
                "s_per_image": {"local": round(tiny_local["images"] / tiny_n, 4), "ray": round(tiny_ray["images"] / tiny_n, 4)},
                "ray_ms_per_image": round(1000 * overhead, 1),
                "ratio_to_model_time_per_image": round(overhead / (local["images"] / n), 3),
            },
            "notes": "rates count from when the model is loaded in every process/worker; start_s is the time before that",
        }
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
