"""How close the whole irx pipeline comes to the model's own forward pass on a GPU (issue #15).

    python benchmarks/gpu_pipeline.py                 # a lent GPU, under 5 minutes -> benchmarks/results/gpu_pipeline.json
    python benchmarks/gpu_pipeline.py --smoke         # CPU or GPU, tiny models and sizes, a few seconds
    python benchmarks/gpu_pipeline.py --cpu-before-after  # CPU: pipeline / forward, float path vs integer path

Models, random weights at the sizes users run: Real-ESRGAN's RRDBNet x4 (spandrel's ESRGAN arch, 23 blocks,
64 features), NAFNet width 64 (SIDD layout) and LAformer-small (irx.archs, the 1x U-Net). Per case
(precision fp16/fp32, batch 1 or the engine's auto batch, torch.compile off/on, channels_last off/on):

  forward_images_per_s   the model call alone on device-resident batches already in the model's dtype: the limit
  engine_*_images_per_s  Engine.submit/result on decoded host images (float32, and uint8 over the bus),
                         one batch in flight while the next is submitted
  pipeline_images_per_s  the irx pipeline (decode threads -> engine -> encode threads) on a folder of PNGs
  ratio                  pipeline / forward
  video_*                the irx video path on an H.264 clip: frames/s, stage busy seconds, ratio to the slowest stage
  peak_mib               GPU memory peak of the forward pass and of the pipeline run

Cases run in order of importance and stop at --budget-s so one call always finishes; the JSON is rewritten
after every case, so a run cut short keeps what it measured. channels_last cases skip the engine_* columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from doc_markers import replace_between
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "results.md"
DOC_START, DOC_END = "<!-- gpu_pipeline:start -->", "<!-- gpu_pipeline:end -->"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], torch.nn.Module]
    size: tuple[int, int]  # (height, width) of the inputs


def model_specs(smoke: bool) -> list[ModelSpec]:
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet
    from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet

    from irx.archs.laformer import build_laformer

    if smoke:  # the same architectures, shrunk to run in seconds on two CPU cores
        size = (48, 64)
        return [
            ModelSpec("RRDBNet_x4", lambda: RRDBNet(num_filters=8, num_blocks=1, scale=4), size),
            ModelSpec("NAFNet_w64", lambda: NAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
                      size),
            ModelSpec("LAformer_small", lambda: build_laformer("tiny"), size),
            ModelSpec("LAformer_small_512", lambda: build_laformer("tiny"), (32, 32)),
        ]
    full_hd = (1080, 1920)
    return [
        ModelSpec("RRDBNet_x4", lambda: RRDBNet(num_filters=64, num_blocks=23, scale=4), full_hd),
        ModelSpec("NAFNet_w64", lambda: NAFNet(width=64, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8],
                                               dec_blk_nums=[2, 2, 2, 2]), full_hd),
        ModelSpec("LAformer_small", lambda: build_laformer("small"), full_hd),
        # launch-bound at this size: where batching must pay (target: auto >= 3x batch 1)
        ModelSpec("LAformer_small_512", lambda: build_laformer("small"), (512, 512)),
    ]


@dataclass(frozen=True)
class Case:
    precision: str
    batch: str  # "1" or "auto"
    compile: bool = False
    channels_last: bool = False
    video: bool = False


def cases_for(spec: ModelSpec, with_compile: bool, smoke: bool) -> list[Case]:
    """The most telling first: fp16 at the auto batch, then batch 1, fp32, channels_last, compile."""
    if spec.name.endswith("_512"):
        return [Case("fp16", "auto"), Case("fp16", "1")]
    if smoke:  # every code path once
        cases = [Case("fp16", "auto", video=True), Case("fp32", "1"), Case("fp32", "auto", channels_last=True)]
        return cases + [Case("fp32", "auto", compile=True, video=True)] if with_compile else cases
    cases = [Case("fp16", "auto", video=True), Case("fp16", "1"), Case("fp32", "auto", video=True), Case("fp32", "1"),
             Case("fp16", "auto", channels_last=True), Case("fp32", "auto", channels_last=True)]
    if with_compile:
        cases.append(Case("fp16", "auto", compile=True, video=True))
    return cases


def descriptor_for(spec: ModelSpec) -> Any:
    """A fresh spandrel descriptor of the model with seeded random weights (each engine converts its own)."""
    from spandrel import ModelLoader

    from irx.archs import register_spandrel

    register_spandrel()
    torch.manual_seed(0)
    module = spec.build()
    return ModelLoader().load_from_state_dict({k: v.contiguous() for k, v in module.state_dict().items()})


# ---------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def repeat_for(seconds: float, device: torch.device, step: Callable[[], int]) -> float:
    """Items per second of `step` (which returns how many items it did), after one warm-up call."""
    step()
    synchronize(device)
    done, calls = 0, 0
    start = time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        done += step()
        calls += 1
    synchronize(device)
    return done / (time.perf_counter() - start)


def forward_rate(engine: Any, batch: int, height: int, width: int, seconds: float) -> tuple[float, bool]:
    """The model call alone on a device-resident batch in the model's dtype; also whether compile held."""
    compiled = engine.compiling
    with engine._no_grad():
        x = torch.rand(batch, engine.input_channels, height, width, device=engine.device)
        x = engine._model_input(engine._pad(x, bucketed=compiled))  # `batch` is the full batch already

        def step() -> int:
            if not (engine.compiling and engine._compiled(x) is not None):
                engine._call_model(x)
            return batch

        rate = repeat_for(seconds, engine.device, step)
    return rate, compiled and engine.compiling


def engine_rate(engine: Any, images: list[np.ndarray], batch: int, seconds: float) -> float:
    """Engine.submit/result over decoded host images, the next batch submitted before this one is read."""
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]

    def step() -> int:
        pending = None
        for chunk in batches:
            submitted = engine.submit(chunk)
            if pending is not None:
                pending.result()
            pending = submitted
        pending.result()
        return len(images)

    return repeat_for(seconds, engine.device, step)


# ---------------------------------------------------------------------- the irx pipeline (swap for irx.restore_files)
def run_irx(inputs: list[Path], output: Path, engine: Any, video_batch: int) -> dict[str, Any]:
    """Restore files or one video the way the CLI does; returns items done, seconds and video stage times."""
    from irx.media import video
    from irx.media.sources import plan_jobs
    from irx.pipeline import PipelineOptions, run_pipeline

    if len(inputs) == 1 and inputs[0].suffix == ".mp4":  # restore_video directly: it reports per-stage times
        start = time.perf_counter()
        result = video.restore_video(inputs[0], output, engine, video.VideoOptions(overwrite=True, batch_size=video_batch))
        return {"items": result.frames, "seconds": time.perf_counter() - start, "stage_seconds": result.stage_seconds}
    jobs = plan_jobs([str(p) for p in inputs], suffix="bench", output=output, skip_existing=False).jobs
    start = time.perf_counter()
    summary = run_pipeline(jobs, [engine], PipelineOptions(overwrite=True))
    if summary.failed:
        raise RuntimeError(f"pipeline failures: {summary.failed[:2]}")
    return {"items": len(summary.processed), "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------- inputs
def make_photos(folder: Path, count: int, height: int, width: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1).astype(np.int16)
    paths = []
    for i in range(count):
        noisy = np.clip(np.roll(base, 7 * i, axis=1) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}.png"
        Image.fromarray(noisy).save(path, compress_level=1)
        paths.append(path)
    return paths


def make_video(path: Path, frames: int, height: int, width: int) -> Path:
    import av

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# ---------------------------------------------------------------------- one case
def run_case(spec: ModelSpec, case: Case, device: torch.device, inputs: dict[str, Any], args: argparse.Namespace,
             tmp: Path) -> dict[str, Any]:
    from irx.engine import Engine

    height, width = spec.size
    engine = Engine(descriptor_for(spec), device=device, precision=case.precision, batch_size=case.batch,
                    channels_last=case.channels_last, compile=case.compile)
    batch = engine.images_per_batch(height, width)
    # The folder holds args.images photos: the forward pass gets batches the pipeline can form too.
    batch_used = min(batch, args.images)
    row: dict[str, Any] = {"model": spec.name, "input": f"{width}x{height}", "precision": case.precision,
                           "dtype": str(engine.dtype).removeprefix("torch."), "batch": case.batch,
                           "engine_batch": batch, "batch_used": batch_used, "tile": engine.tile_size_for(height, width),
                           "compile": case.compile, "channels_last": case.channels_last}
    started = time.perf_counter()
    reset_peak(device)
    forward, compile_held = forward_rate(engine, batch_used, height, width, args.seconds)
    row["forward_images_per_s"] = round(forward, 3)
    row["forward_peak_mib"] = peak_mib(device)
    if case.compile:
        row["compile_held"] = compile_held  # False: it fell back to eager (see the warning)
        row["compile_and_forward_s"] = round(time.perf_counter() - started, 1)
    photos: list[Path] = inputs["photos"][spec.size]
    if not case.channels_last:  # the engine alone, uint8 vs float32 on the bus (the layout changes neither)
        decoded = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
        row["engine_uint8_images_per_s"] = round(engine_rate(engine, decoded, batch_used, args.seconds), 3)
        row["engine_float32_images_per_s"] = round(
            engine_rate(engine, [d.astype(np.float32) / 255 for d in decoded], batch_used, args.seconds), 3)
    reset_peak(device)
    done = run_irx(photos, tmp / f"out_{spec.name}", engine, batch_used)
    row["pipeline_images"] = done["items"]
    row["pipeline_images_per_s"] = round(done["items"] / done["seconds"], 3)
    row["pipeline_peak_mib"] = peak_mib(device)
    row["ratio"] = round(row["pipeline_images_per_s"] / forward, 3)
    if case.video and spec.size in inputs["videos"]:
        done = run_irx([inputs["videos"][spec.size]], tmp / f"out_{spec.name}.mp4", engine, max(4, batch_used))
        frames, stages = done["items"], done["stage_seconds"]
        slowest = max(stages.get(k, 0.0) for k in ("decode", "engine", "encode"))
        row["video_frames"] = frames
        row["video_frames_per_s"] = round(frames / done["seconds"], 3)
        row["video_stage_seconds"] = stages
        row["video_ratio_to_slowest_stage"] = round((frames / done["seconds"]) / (frames / slowest), 3) if slowest else None
        row["video_ratio_to_forward"] = round(row["video_frames_per_s"] / forward, 3)
    return row


# ---------------------------------------------------------------------- before / after on the CPU
@contextmanager
def float_pipeline() -> Iterator[None]:
    """The image pipeline as it was before issue #15's change: float32 pixels decoded on the host and handed
    to the engine, each batch collected and handed to the encoders before the next one is taken."""
    from irx.media.image_io import read_image
    from irx.pipeline import _Run

    decode, submit = _Run._decode, _Run._submit_batch

    def decode_float(self: Any, job: Any) -> Any:
        return read_image(job.source)

    def submit_and_finish(self: Any, engine: Any, batch: list[Any]) -> None:
        pending = submit(self, engine, batch)
        if pending is not None:
            self._finish_batch(engine, batch, pending)

    _Run._decode, _Run._submit_batch = decode_float, submit_and_finish
    try:
        yield
    finally:
        _Run._decode, _Run._submit_batch = decode, submit


def in_thread(work: Callable[[], float]) -> float:
    """Run `work` in a new thread and return its result."""
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def cpu_before_after(args: argparse.Namespace) -> int:
    """Pipeline / forward for a tiny bundled model on a folder of PNGs, the float path and the integer path
    interleaved in one run (rounds alternate, medians reported) so both see the same machine load.

    The limit is the faster of the forward pass at batch 1 and at the engine's batch: on a CPU a big batch
    is not always faster per image, and the pipeline forms whatever batches the decoders have ready.
    """
    from irx.api import load_model
    from irx.engine import Engine

    size, count, rounds, batch = args.size, args.images or 16, args.rounds, args.cpu_batch
    engine = Engine(load_model(args.model, device="cpu"), device="cpu", precision="fp32", batch_size=batch)
    formed: list[int] = []  # the batch sizes the pipeline handed the engine
    submit = engine.submit

    def counting_submit(images: Any) -> Any:
        formed.append(len(images))
        return submit(images)

    engine.submit = counting_submit  # type: ignore[method-assign]
    paths = ("float32 path (before)", "uint8 path + submit (after)")
    results: dict[str, list[float]] = {"forward": [], **{name: [] for name in paths}}
    batches: dict[str, list[int]] = {name: [] for name in paths}
    seconds = args.seconds or 2.0
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        photos = make_photos(tmp / "in", count, size, size)
        run_irx(photos, tmp / "warm", engine, batch)  # warm-up: allocator, threads, first calls
        for _ in range(rounds):
            # in a worker thread, as the pipeline's engine runs: on a loaded CPU, torch's intra-op threads behave
            # very differently in the main thread (3x slower measured here), which would flatter the pipeline
            rates = [in_thread(lambda b=b: forward_rate(engine, b, size, size, seconds)[0]) for b in sorted({1, batch})]
            results["forward"].append(max(rates))
            for name in paths:
                formed.clear()
                if name == paths[0]:
                    with float_pipeline():
                        done = run_irx(photos, tmp / "before", engine, batch)
                else:
                    done = run_irx(photos, tmp / "after", engine, batch)
                results[name].append(done["items"] / done["seconds"])
                batches[name] += formed
    forward = float(np.median(results["forward"]))
    report: dict[str, Any] = {
        "device": f"cpu ({platform.machine()}), {torch.get_num_threads()} threads", "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_1m": round(os.getloadavg()[0], 2),
        "note": "busy shared machine (two trainings running): figures are noisy, compare within this run only; "
                "forward measured in a worker thread like the pipeline's engine",
        "model": args.model, "input": f"{size}x{size}", "images": count, "batch_size": batch, "rounds": rounds,
        "forward_images_per_s": round(forward, 3), "forward_per_round": [round(r, 3) for r in results["forward"]],
        "cases": [],
    }
    for name in paths:
        rate = float(np.median(results[name]))
        report["cases"].append({"pipeline": name, "forward_images_per_s": round(forward, 3),
                                "pipeline_images_per_s": round(rate, 3), "ratio": round(rate / forward, 3),
                                "per_round": [round(r, 3) for r in results[name]],
                                "mean_batch_formed": round(float(np.mean(batches[name])), 2)})
    output = args.output or RESULTS / "gpu_pipeline_cpu.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _find(rows: list[dict[str, Any]], model: str, precision: str, batch: str, **flags: bool) -> dict[str, Any] | None:
    for row in rows:
        if (row.get("model"), row.get("precision"), row.get("batch")) == (model, precision, batch) and all(
            row.get(k, False) == v for k, v in {"compile": False, "channels_last": False, **flags}.items()
        ):
            return row
    return None


def markdown(report: dict[str, Any]) -> str:
    """The table and the issue's targets, as docs/results.md quotes them."""
    rows = [r for r in report["cases"] if "error" not in r]
    columns = ["model", "input", "precision", "batch_used", "compile", "channels_last", "forward_images_per_s",
               "engine_uint8_images_per_s", "engine_float32_images_per_s", "pipeline_images_per_s", "ratio",
               "video_frames_per_s", "video_ratio_to_slowest_stage", "forward_peak_mib"]
    lines = [f"{report['device']}, torch {report['torch']}, {report['date']}, {report['seconds']} s.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    lines += [f"| {r['model']} | error: {r['error']} |" for r in report["cases"] if "error" in r]
    targets = []
    rrdb = _find(rows, "RRDBNet_x4", "fp16", "auto")
    if rrdb:
        verdict = "met" if rrdb["ratio"] >= 0.9 else "missed"
        targets.append(f"- RRDBNet x4, folder of {rrdb['input']} PNGs, fp16: pipeline / forward = {rrdb['ratio']:.2f} (>= 0.9: {verdict})")
    for row in rows:
        if row.get("video_ratio_to_slowest_stage") is not None:
            verdict = "met" if row["video_ratio_to_slowest_stage"] >= 0.9 else "missed"
            targets.append(f"- video, {row['model']} {row['precision']} compile={row['compile']}: "
                           f"{row['video_ratio_to_slowest_stage']:.2f} of the slowest stage (>= 0.9: {verdict}); "
                           f"stage busy seconds {row['video_stage_seconds']}")
    auto, one = _find(rows, "LAformer_small_512", "fp16", "auto"), _find(rows, "LAformer_small_512", "fp16", "1")
    if auto and one:
        gain = auto["forward_images_per_s"] / one["forward_images_per_s"]
        piped = auto["pipeline_images_per_s"] / one["pipeline_images_per_s"]
        verdict = "met" if gain >= 3 else "missed"
        targets.append(f"- LAformer-small at {auto['input']}, fp16: batch auto / batch 1 = {gain:.2f} forward, {piped:.2f} "
                       f"pipeline (>= 3: {verdict})")
    return "\n".join(lines + ["", "Targets of issue #15, as computed from the table:", ""] + targets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models and sizes; runs on the CPU in seconds")
    parser.add_argument("-o", "--output", type=Path, default=None)
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --smoke when there is no GPU")
    parser.add_argument("--seconds", type=float, default=None, help="timing budget per measurement")
    parser.add_argument("--images", type=int, default=None, help="PNGs in the folder")
    parser.add_argument("--frames", type=int, default=None, help="frames in the video clip")
    parser.add_argument("--budget-s", type=float, default=None, help="start no case after this many seconds")
    parser.add_argument("--models", default="", help="comma-separated subset of the model names")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile cases")
    parser.add_argument("--compile", action="store_true", help="run the compile cases in --smoke on the CPU too")
    parser.add_argument("--cpu-before-after", action="store_true",
                        help="CPU: pipeline / forward of a tiny bundled model, float path (before) vs integer path (after)")
    parser.add_argument("--model", default="laformer_tiny_denoise", help="with --cpu-before-after: the model")
    parser.add_argument("--size", type=int, default=256, help="with --cpu-before-after: the photos' edge")
    parser.add_argument("--rounds", type=int, default=3, help="with --cpu-before-after: alternating rounds")
    parser.add_argument("--cpu-batch", type=int, default=4, help="with --cpu-before-after: the engine's batch size")
    args = parser.parse_args()
    if args.cpu_before_after:
        return cpu_before_after(args)
    smoke = args.smoke
    args.seconds = args.seconds if args.seconds is not None else (0.05 if smoke else 1.5)
    args.images = args.images or (3 if smoke else 16)
    args.frames = args.frames or (6 if smoke else 24)
    args.budget_s = args.budget_s if args.budget_s is not None else (30.0 if smoke else 270.0)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() or not smoke else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu_pipeline.py needs a CUDA GPU (or --smoke)", file=sys.stderr)
        return 1
    output = args.output or (Path(tempfile.gettempdir()) / "gpu_pipeline_smoke.json" if smoke
                             else RESULTS / "gpu_pipeline.json")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif smoke:
        torch.set_num_threads(1)  # tiny tensors: a second thread costs more in synchronisation than it saves
    # inductor on two CPU cores takes minutes for these models, so a CPU smoke run leaves it out unless asked
    with_compile = not args.no_compile and (args.compile or not (smoke and device.type == "cpu"))
    specs = [s for s in model_specs(smoke) if not args.models or s.name in args.models.split(",")]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": smoke, "compile_cases": with_compile,
        "cases": [], "skipped": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        inputs: dict[str, Any] = {"photos": {}, "videos": {}}
        for spec in specs:
            if spec.size not in inputs["photos"]:
                h, w = spec.size
                inputs["photos"][spec.size] = make_photos(tmp / f"in_{w}x{h}", args.images, h, w)
                if not spec.name.endswith("_512"):
                    inputs["videos"][spec.size] = make_video(tmp / f"clip_{w}x{h}.mp4", args.frames, h, w)
        plan = [(spec, case) for spec in specs for case in cases_for(spec, with_compile, smoke)]
        # round-robin over the models so a budget cut leaves every model its most telling cases
        plan.sort(key=lambda item: cases_for(item[0], with_compile, smoke).index(item[1]))
        for spec, case in plan:
            label = f"{spec.name} {case}"
            if time.perf_counter() - started > args.budget_s:
                report["skipped"].append(f"{label}: time budget")
                continue
            try:
                row = run_case(spec, case, device, inputs, args, tmp)
            except Exception as exc:  # noqa: BLE001 - one failing case must not hide the others
                row = {"model": spec.name, "case": str(case), "error": f"{type(exc).__name__}: {exc}"}
            report["cases"].append(row)
            print(json.dumps(row), flush=True)
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["seconds"] = round(time.perf_counter() - started, 1)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    print(table)
    if not smoke and args.output is None:
        replace_between(DOC, DOC_START, DOC_END, table)
    print(f"{len(report['cases'])} cases, {len(report['skipped'])} skipped, {report['seconds']} s -> {output}")
    required = ("forward_images_per_s", "pipeline_images_per_s", "ratio")
    broken = [row for row in report["cases"] if "error" in row or any(key not in row for key in required)]
    if smoke and broken:  # the smoke run is the check that the real one will work: a broken case fails it
        print(f"smoke run: {len(broken)} case(s) failed or lack {', '.join(required)}: {broken[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
