"""The image pipeline's data path (issue #15): stored integers to the engine, one batch in flight.

Outputs must be the same bit for bit as restoring float pixels (the way the pipeline worked before), while
the engine receives the file's own uint8/uint16 samples wherever the output keeps that depth unresized.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from spandrel import ModelLoader

from irx.engine import Engine, PendingRestore
from irx.media.image_io import read_image, write_image
from irx.media.sources import Job
from irx.pipeline import PipelineOptions, finish_image, run_pipeline
from tests import test_engine
from tests.conftest import make_image

denoiser, upscaler = test_engine.denoiser, test_engine.upscaler  # the same module-scoped fixtures


def save_png(path: Path, image: np.ndarray, dtype: type, alpha: bool = False) -> Path:
    peak = np.iinfo(dtype).max
    samples = np.rint(image * peak).astype(dtype)
    if alpha:
        ramp = np.linspace(0, peak, image.shape[1], dtype=np.float64)
        samples = np.concatenate([samples, np.broadcast_to(ramp, image.shape[:2])[..., None].astype(dtype)], axis=2)
    order = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[samples.shape[2]]  # OpenCV writes BGR(A)
    assert cv2.imwrite(str(path), np.ascontiguousarray(samples[:, :, order]))
    return path


def restored_the_float_way(
    engine: Engine, jobs: list[Job], batches: list[int], out_scale: int | None, folder: Path
) -> list[np.ndarray]:
    """What the pipeline wrote before it handed the engine integers: float pixels in, float out, then encoded.

    The images are restored in the batches the pipeline formed: a batch of 3 and three batches of 1 may
    differ in the last bit whatever the dtype (the convolution kernels differ).
    """
    written = []
    jobs = list(jobs)
    for size in batches:
        group, jobs = jobs[:size], jobs[size:]
        decoded = [read_image(job.source) for job in group]
        for job, image, out in zip(group, decoded, engine.restore([d.pixels for d in decoded])):
            output = folder / f"reference_{job.output.name}"
            write_image(output, finish_image(image, out, engine.scale, out_scale), overwrite=True)
            written.append(read_image(output, native=True).pixels)
    return written


class Spy:
    """Records the dtypes the engine receives and the order of submits and results."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch, first_delay: float = 0.0) -> None:
        self.dtypes: list[np.dtype] = []
        self.batches: list[int] = []
        self.events: list[str] = []
        submit, result = engine.submit, PendingRestore.result
        spy = self

        def spied_submit(images):
            spy.dtypes += [image.dtype for image in images]
            spy.batches.append(len(images))
            number = sum(e.startswith("submit") for e in spy.events) + 1
            spy.events.append(f"submit{number}")
            if number == 1 and first_delay:
                time.sleep(first_delay)  # the decoders get ahead, so the next batch is ready at once
            pending = submit(images)
            pending.number = number
            return pending

        def spied_result(pending):
            spy.events.append(f"result{pending.number}")
            return result(pending)

        monkeypatch.setattr(engine, "submit", spied_submit)
        monkeypatch.setattr(PendingRestore, "result", spied_result)


@pytest.mark.parametrize(
    ("model_name", "dtype", "channels", "alpha", "suffix", "out_scale", "engine_dtype"),
    [
        ("denoiser", np.uint8, 3, False, ".png", None, np.uint8),
        ("upscaler", np.uint8, 3, True, ".png", None, np.uint8),
        ("upscaler", np.uint8, 1, False, ".png", None, np.uint8),
        ("denoiser", np.uint16, 3, False, ".png", None, np.uint16),
        ("upscaler", np.uint16, 1, False, ".tif", None, np.uint16),
        ("upscaler", np.uint16, 3, True, ".png", None, np.uint16),
        # written at a lower depth, or resized: float to the engine, as before
        ("denoiser", np.uint16, 3, False, ".jpg", None, np.float32),
        ("upscaler", np.uint8, 3, False, ".png", 1, np.float32),
    ],
)
def test_pipeline_outputs_are_bit_identical_to_the_float_path(
    model_name, dtype, channels, alpha, suffix, out_scale, engine_dtype, request, tmp_path, monkeypatch
):
    engine = Engine(request.getfixturevalue(model_name), device="cpu", tile=0)
    spy = Spy(engine, monkeypatch)
    sources = [save_png(tmp_path / f"in{i}.png", make_image(37, 52, channels, seed=i), dtype, alpha) for i in range(3)]
    jobs = [Job(s, tmp_path / "out" / f"{s.stem}{suffix}", "image") for s in sources]
    # alpha resized, as the float-way reference does (alpha restored by the model runs in float: test_finish)
    summary = run_pipeline(jobs, [engine], PipelineOptions(out_scale=out_scale, claims=False, alpha="resize"))
    assert not summary.failed and len(summary.processed) == 3
    assert set(spy.dtypes) == {np.dtype(engine_dtype)}
    monkeypatch.undo()  # the reference runs the plain engine
    references = restored_the_float_way(engine, jobs, spy.batches, out_scale, tmp_path)
    for job, reference in zip(jobs, references, strict=True):
        written = read_image(job.output, native=True).pixels
        assert written.dtype == reference.dtype == np.dtype(dtype if suffix != ".jpg" else np.uint8)
        assert np.array_equal(written, reference), job.name


def test_the_next_batch_is_submitted_before_the_current_one_is_collected(denoiser, tmp_path, monkeypatch):
    """As on CUDA, where submit returns before the work is done (the CPU engine does it inside submit)."""
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=1)
    monkeypatch.setattr(Engine, "asynchronous", property(lambda self: True))
    spy = Spy(engine, monkeypatch, first_delay=0.3)
    sources = [save_png(tmp_path / f"in{i}.png", make_image(20, 24, seed=i), np.uint8) for i in range(4)]
    jobs = [Job(s, tmp_path / "out" / s.name, "image") for s in sources]
    summary = run_pipeline(jobs, [engine], PipelineOptions(claims=False, prefetch=8))
    assert sorted(summary.processed) == sorted(j.name for j in jobs)
    assert spy.events.index("submit2") < spy.events.index("result1")
    results = [e for e in spy.events if e.startswith("result")]
    assert results == ["result1", "result2", "result3", "result4"]  # collected in order, each once
    monkeypatch.undo()
    references = restored_the_float_way(engine, jobs, [1, 1, 1, 1], None, tmp_path)
    for job, reference in zip(jobs, references, strict=True):  # each output is its own input's, no mix-up
        assert np.array_equal(read_image(job.output, native=True).pixels, reference)


def test_on_the_cpu_each_batch_goes_to_the_encoders_at_once(denoiser, tmp_path, monkeypatch):
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=1)
    spy = Spy(engine, monkeypatch, first_delay=0.3)
    sources = [save_png(tmp_path / f"in{i}.png", make_image(20, 24, seed=i), np.uint8) for i in range(3)]
    run_pipeline([Job(s, tmp_path / "out" / s.name, "image") for s in sources], [engine], PipelineOptions(claims=False))
    assert spy.events == ["submit1", "result1", "submit2", "result2", "submit3", "result3"]


def test_prefetch_of_one_batch_does_not_deadlock(denoiser, tmp_path, monkeypatch):
    """A batch in flight holds its prefetch slots; the worker must not wait for a decode that needs them."""
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=2)
    monkeypatch.setattr(Engine, "asynchronous", property(lambda self: True))
    sources = [save_png(tmp_path / f"in{i}.png", make_image(20, 24, seed=i), np.uint8) for i in range(5)]
    jobs = [Job(s, tmp_path / "out" / s.name, "image") for s in sources]
    summary = run_pipeline(jobs, [engine], PipelineOptions(claims=False, prefetch=2))
    assert len(summary.processed) == 5


def test_a_batch_failing_when_collected_fails_only_its_own_files(denoiser, tmp_path, monkeypatch):
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=1)
    monkeypatch.setattr(Engine, "asynchronous", property(lambda self: True))  # a batch in flight when it fails
    sources = [save_png(tmp_path / f"in{i}.png", make_image(20, 24 + 8 * i, seed=i), np.uint8) for i in range(3)]
    jobs = [Job(s, tmp_path / "out" / s.name, "image") for s in sources]
    result = PendingRestore.result

    def failing_result(pending):
        images = result(pending)
        if images[0].shape[1] == 32:  # the second file's width
            raise RuntimeError("device-side assert")
        return images

    monkeypatch.setattr(PendingRestore, "result", failing_result)
    summary = run_pipeline(jobs, [engine], PipelineOptions(claims=False))
    assert [f["path"] for f in summary.failed] == [jobs[1].name]
    assert "device-side assert" in summary.failed[0]["reason"]
    assert sorted(summary.processed) == [jobs[0].name, jobs[2].name]
    assert not jobs[1].output.exists() and jobs[0].output.exists() and jobs[2].output.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_pipeline_matches_the_cpu_pipeline(tiny_denoiser, tmp_path):
    """The pinned, side-stream path with a batch in flight writes what the CPU writes (to within rounding)."""
    sources = [save_png(tmp_path / f"in{i}.png", make_image(40, 56, seed=i), np.uint8 if i % 2 else np.uint16)
               for i in range(6)]
    written = {}
    for device in ("cpu", "cuda"):
        engine = Engine(ModelLoader().load_from_file(tiny_denoiser), device=device, precision="fp32", tile=0,
                        batch_size=2)
        jobs = [Job(s, tmp_path / device / s.name, "image") for s in sources]
        summary = run_pipeline(jobs, [engine], PipelineOptions(claims=False))
        assert len(summary.processed) == len(jobs)
        written[device] = [read_image(job.output, native=True).pixels for job in jobs]
    for on_cpu, on_gpu in zip(written["cpu"], written["cuda"], strict=True):
        assert on_cpu.dtype == on_gpu.dtype
        peak = np.iinfo(on_cpu.dtype).max
        assert np.abs(on_cpu.astype(np.int64) - on_gpu.astype(np.int64)).max() <= max(1, 1e-4 * peak)
