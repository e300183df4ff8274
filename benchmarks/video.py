"""Video pipeline throughput: does decode -> model -> encode overlap the three stages?

Measures, in one run, on a synthetic 1080p clip (libx264, with an AAC track):
1. decode alone: demux + decode + conversion to float32 RGB (what the decode thread does);
2. model alone: a small torch conv net on the decoded frames (what the calling thread does);
3. encode alone: conversion back + libx264 encode (what the encode thread does);
4. the whole of ``restore_video`` (all three overlapped, plus the audio copy).
Target: the overlapped pipeline reaches >= 90% of the slowest stage's throughput.
Results go to benchmarks/results/video.json.

    python benchmarks/video.py [--frames 60] [--width 1920 --height 1080] [--threads 1] [--model conv|laformer]

The default model is a 2-layer conv net (3->16->3 channels, residual) because LAformer-tiny takes tens
of seconds per 1080p frame on a CPU; on a GPU machine pass --model laformer --device cuda.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from torch import nn

from irx.media import video as V
from irx.media.video import plan as VP

RESULTS = Path(__file__).resolve().parent / "results"


class TinyConv(nn.Module):
    """3 -> 16 -> 3 channels, 3x3 convolutions, residual: about 3.6 GFLOP per 1080p frame."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.body(x)).clamp(0, 1)


class TorchEngine:
    """The Engine contract over a torch module: uint8 (or float32) HWC numpy in, float32 out."""

    def __init__(self, model: nn.Module, device: str) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.scale = 1

    @torch.inference_mode()
    def restore(self, images):
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        if not batch.is_floating_point():  # the video path hands over uint8 (uint16) frames
            batch = batch.float() / torch.iinfo(batch.dtype).max
        out = self.model(batch).permute(0, 2, 3, 1).float().cpu().numpy()
        return list(out)


class SimulatedAccelerator:
    """An engine that takes a fixed time per frame without using the CPU (time.sleep), like a GPU would.

    On a small CPU-only machine the real model and the encoder fight for the same cores, which hides how
    well the stages overlap; this engine measures the overlap itself.
    """

    def __init__(self, seconds_per_frame: float) -> None:
        self.seconds_per_frame = seconds_per_frame
        self.scale = 1

    def restore(self, images):
        time.sleep(self.seconds_per_frame * len(images))
        return list(images)


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A moving textured gradient (some detail for the codec) with a sine-wave AAC track."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (height, width + frames * 4, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0 : width + frames * 4]
    base = np.stack([(x * 255 // (width + frames * 4)), (y * 255 // height), ((x + y) % 256)], axis=-1).astype(np.uint8)
    base = np.clip(base.astype(int) + texture - 20, 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "20"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i * 4 : i * 4 + width]), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        samples = int(48000 * frames / 30)
        wave = (np.sin(np.arange(samples) / 20.0) * 0.2).astype(np.float32)
        layout = audio.codec_context.layout.name
        channels = audio.codec_context.layout.nb_channels
        af = av.AudioFrame.from_ndarray(np.repeat(wave[None], channels, axis=0), format="fltp", layout=layout)
        af.sample_rate = 48000
        af.pts = 0
        out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


def plan_for(src: Path, dst: Path, options: V.VideoOptions) -> VP._Plan:
    info = V.probe_video(src)
    with av.open(str(src)) as container:
        plan, _ = VP._plan_output(info, container.streams.video[0], dst, 1, options)
    return plan


def decode_alone(src: Path, plan: VP._Plan, keep: int) -> tuple[float, list[np.ndarray]]:
    kept: list[np.ndarray] = []
    count = 0
    start = time.perf_counter()
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            array = VP._to_engine(frame, plan)
            if len(kept) < keep:
                kept.append(array)
            count += 1
    return count / (time.perf_counter() - start), kept


def model_alone(engine: V.FrameRestorer, frames: list[np.ndarray], total: int, batch: int) -> tuple[float, list[np.ndarray]]:
    outputs: list[np.ndarray] = []
    engine.restore(frames[:1])  # warm-up (first call allocates)
    start = time.perf_counter()
    done = 0
    while done < total:
        n = min(batch, total - done)
        chunk = [frames[(done + i) % len(frames)] for i in range(n)]
        result = engine.restore(chunk)
        if len(outputs) < len(frames):
            outputs.extend(result)
        done += n
    return total / (time.perf_counter() - start), outputs[: len(frames)]


def encode_alone(outputs: list[np.ndarray], plan: VP._Plan, total: int) -> float:
    step = max(1, round(1 / (plan.rate * plan.time_base)))
    start = time.perf_counter()
    with av.open(io.BytesIO(), "w", format=plan.muxer) as out:
        stream = VP._add_video_stream(out, plan)
        for i in range(total):
            out.mux(stream.encode(VP._from_engine(outputs[i % len(outputs)], plan, i * step, step)))
        out.mux(stream.encode(None))
    return total / (time.perf_counter() - start)


def pipeline(src: Path, dst: Path, engine: V.FrameRestorer, batch: int) -> tuple[float, float, V.VideoResult]:
    """End-to-end fps, and steady-state fps: frames through the engine per second after the first batch.

    The steady rate leaves out the start (opening, first decodes) and the tail (the encoder's look-ahead
    flushed after the last frame), which a long video amortises; while the queues are full it is the
    rate of the slowest stage as the whole pipeline sees it.
    """
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    result = V.restore_video(
        src,
        dst,
        engine,
        V.VideoOptions(batch_size=batch, overwrite=True),
        on_progress=lambda done, total: marks.append((time.perf_counter(), done)),
    )
    end_to_end = result.frames / (time.perf_counter() - start)
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    steady = (n1 - n0) / (t1 - t0) if t1 > t0 else end_to_end
    return end_to_end, steady, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--model", choices=("conv", "laformer"), default="conv")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=int, default=8, help="distinct decoded frames held for the model/encode stages")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "laformer":
        from irx.archs import build_model

        model: nn.Module = build_model("laformer", "tiny")
    else:
        model = TinyConv()
    engine = TorchEngine(model, args.device)

    with tempfile.TemporaryDirectory() as tmp:
        src = make_clip(Path(tmp) / "clip.mp4", args.frames, args.width, args.height)
        dst = Path(tmp) / "restored.mp4"
        plan = plan_for(src, dst, V.VideoOptions())
        decode_fps, frames = decode_alone(src, plan, args.keep)
        model_fps, outputs = model_alone(engine, frames, args.frames, args.batch)
        encode_fps = encode_alone(outputs, plan, args.frames)
        frames_for_sim = outputs[:2]
        del frames, outputs
        pipe_fps, steady_fps, result = pipeline(src, dst, engine, args.batch)
        # The same pipeline with a simulated accelerator a little slower than the encoder.
        simulated = SimulatedAccelerator(1.25 / encode_fps)
        sim_model_fps, _ = model_alone(simulated, frames_for_sim, args.frames, args.batch)
        sim_fps, sim_steady, sim_result = pipeline(src, dst, simulated, args.batch)

    slowest = min(decode_fps, model_fps, encode_fps)
    serial = 1 / (1 / decode_fps + 1 / model_fps + 1 / encode_fps)
    sim_slowest = min(decode_fps, sim_model_fps, encode_fps)
    report = {
        "clip": f"{args.width}x{args.height}, {args.frames} frames, libx264 + AAC",
        "model": args.model if args.model == "laformer" else "conv 3-16-3 (3x3, residual)",
        "device": args.device,
        "torch_threads": args.threads,
        "batch_size": args.batch,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "platform": platform.platform(),
        "pyav": av.__version__,
        "ffmpeg": av.ffmpeg_version_info,
        "output": f"{result.codec} {result.pix_fmt}",
        "fps": {
            "decode_alone": round(decode_fps, 2),
            "model_alone": round(model_fps, 2),
            "encode_alone": round(encode_fps, 2),
            "serial_sum_estimate": round(serial, 2),
            "pipeline_end_to_end": round(pipe_fps, 2),
            "pipeline_steady": round(steady_fps, 2),
        },
        "steady_vs_slowest_stage": round(steady_fps / slowest, 3),
        "end_to_end_vs_slowest_stage": round(pipe_fps / slowest, 3),
        "end_to_end_vs_serial": round(pipe_fps / serial, 3),
        "target_met": steady_fps >= 0.9 * slowest,
        "pipeline_stage_seconds": result.stage_seconds,
        "engine_busy_fraction": round(result.stage_seconds["engine"] * pipe_fps / result.frames, 3),
        "simulated_accelerator": {
            "seconds_per_frame": round(simulated.seconds_per_frame, 4),
            "fps": {
                "model_alone": round(sim_model_fps, 2),
                "pipeline_end_to_end": round(sim_fps, 2),
                "pipeline_steady": round(sim_steady, 2),
            },
            "steady_vs_slowest_stage": round(sim_steady / sim_slowest, 3),
            "end_to_end_vs_slowest_stage": round(sim_fps / sim_slowest, 3),
            "target_met": sim_steady >= 0.9 * sim_slowest,
            "pipeline_stage_seconds": sim_result.stage_seconds,
        },
        "max_frames_in_flight": result.max_frames_in_flight,
        "frames_in_flight_bound": V.frames_in_flight_bound(args.batch),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "video.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
