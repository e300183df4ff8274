"""Engine data path: integer pixels in and out, device-side tile blending, channels_last, torch.compile.

CPU tests check the numbers every device must give; the CUDA tests (skipped without a GPU) check the pinned,
side-stream path against them.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from spandrel import ModelLoader

from irx.engine import Engine
from irx.engine.compiled import SPATIAL_BUCKET
from irx.engine.tiling import blend_weight, tile_boxes
from irx.engine.transfer import UINT16, quantize, to_numpy, to_unit_float
from irx.errors import IrxWarning
from tests import test_engine
from tests.conftest import make_image

denoiser, upscaler = test_engine.denoiser, test_engine.upscaler  # the same module-scoped fixtures
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def as_uint(image: np.ndarray, dtype: type) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return np.clip(np.rint(image * peak), 0, peak).astype(dtype)


# ---------------------------------------------------------------------- integer pixels
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("tile", [0, 32])
@pytest.mark.parametrize("model_name", ["denoiser", "upscaler"])
def test_integer_input_gives_the_float_result_quantised(model_name, tile, dtype, request):
    model = request.getfixturevalue(model_name)
    engine = Engine(model, device="cpu", tile=tile)
    image = as_uint(make_image(45, 70), dtype)
    peak = np.iinfo(dtype).max
    out = engine.restore_one(image)
    reference = engine.restore_one(image.astype(np.float32) / peak)
    assert out.dtype == dtype and out.shape == reference.shape
    # The same model input, so the only difference is the final rounding (a tie may round either way).
    difference = np.abs(out.astype(np.int64) - np.rint(reference * peak).astype(np.int64))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999
    assert np.abs(out.astype(np.float64) / peak - reference).max() <= 1 / peak


def test_grey_uint8_stays_grey_uint8(upscaler):
    grey = as_uint(make_image(20, 30, channels=1), np.uint8)
    out = Engine(upscaler, device="cpu").restore_one(grey)
    assert out.shape == (40, 60, 1) and out.dtype == np.uint8


def test_mixed_dtypes_come_back_in_order_and_in_their_own_dtype(denoiser):
    calls: list[int] = []
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=8, on_tiles=calls.append)
    base = make_image(24, 24)
    images = [base, as_uint(base, np.uint8), as_uint(base, np.uint8), base.astype(np.float64)]
    results = engine.restore(images)
    assert [r.dtype for r in results] == [np.float32, np.uint8, np.uint8, np.float32]
    assert calls == [1, 2, 1]  # a batch never mixes dtypes
    assert np.abs(results[1].astype(np.float32) / 255 - results[0]).max() < 2 / 255


def test_uint16_extremes_survive_the_int16_bus():
    values = np.array([[[0, 1, 32767], [32768, 40000, 65535]]], dtype=np.uint16)
    bits = torch.from_numpy(values.view(np.int16))
    unit = to_unit_float(bits, UINT16)
    assert torch.allclose(unit * 65535, torch.from_numpy(values.astype(np.float32)))
    assert np.array_equal(to_numpy(quantize(unit, UINT16), UINT16), values)


def test_unsupported_dtypes_are_usage_errors(denoiser):
    from irx.errors import UsageError

    with pytest.raises(UsageError, match="uint8, uint16 or float"):
        Engine(denoiser, device="cpu").restore_one(np.zeros((8, 8, 3), np.int32))


def test_submit_returns_what_restore_returns(denoiser):
    engine = Engine(denoiser, device="cpu", tile=0)
    first = [make_image(24, 24, seed=i) for i in range(2)]
    second = [as_uint(make_image(30, 20, seed=5), np.uint8)]
    pending = [engine.submit(first), engine.submit(second)]  # two batches in flight
    results = [p.result() for p in pending]
    for batch, got in zip([first, second], results):
        for out, expected in zip(got, engine.restore(batch), strict=True):
            assert out.dtype == expected.dtype and np.array_equal(out, expected)


# ---------------------------------------------------------------------- tiles blended on the device
def numpy_blend(engine: Engine, image: np.ndarray, tile: int) -> np.ndarray:
    """The tiled result assembled in numpy: each tile restored alone, weighted, summed and normalised."""
    height, width, _ = image.shape
    s, overlap = engine.scale, engine.tile_overlap
    whole = Engine(engine.descriptor, device="cpu", tile=0)
    total = np.zeros((height * s, width * s, 3), np.float64)
    weights = np.zeros((height * s, width * s, 1), np.float64)
    for box in tile_boxes(height, width, tile, overlap):
        out = whole.restore_one(image[box.y0 : box.y1, box.x0 : box.x1])
        weight = blend_weight(box, height, width, overlap, s)[0].numpy()[..., None]
        total[box.y0 * s : box.y1 * s, box.x0 * s : box.x1 * s] += out * weight
        weights[box.y0 * s : box.y1 * s, box.x0 * s : box.x1 * s] += weight
    return (total / weights).astype(np.float32)


@pytest.mark.parametrize("model_name", ["denoiser", "upscaler"])
def test_device_blend_equals_host_blend_and_the_numpy_reference(model_name, request):
    model = request.getfixturevalue(model_name)
    image = make_image(75, 101)
    results = {}
    for on_device in (True, False):
        engine = Engine(model, device="cpu", tile=32, tile_overlap=8, batch_size=3)
        engine._tiles_on_device = lambda *args, on_device=on_device: on_device  # type: ignore[method-assign]
        results[on_device] = engine.restore_one(image)
    reference = numpy_blend(engine, image, 32)
    assert np.abs(results[True] - results[False]).max() < 1e-6
    assert np.abs(results[True] - reference).max() < 1e-5
    # and tiling did something: the tiled result is not the whole-image one
    assert np.abs(results[True] - Engine(model, device="cpu", tile=0).restore_one(image)).max() > 1e-4


def test_blend_weights_are_computed_once_per_tile_geometry(denoiser):
    engine = Engine(denoiser, device="cpu", tile=32, tile_overlap=8)
    image = make_image(104, 104)  # 4 x 4 tiles: 3 kinds of rows x 3 kinds of columns
    engine.restore_one(image)
    assert engine._weights.misses == 9 and engine._weights.hits == 16 - 9
    engine.restore_one(make_image(104, 104, seed=1))
    assert engine._weights.misses == 9 and engine._weights.hits == 16 - 9 + 16


def test_host_blending_keeps_one_tile_batch_in_flight(denoiser, monkeypatch):
    """On the host path batch k+1 is submitted before batch k is blended (all tiles still land)."""
    events: list[str] = []
    engine = Engine(denoiser, device="cpu", tile=32, tile_overlap=8, batch_size=2)
    engine._tiles_on_device = lambda *args: False  # type: ignore[method-assign]
    forward, download = engine._forward, engine._transfer.download
    monkeypatch.setattr(engine, "_forward", lambda x, **kw: (events.append("forward"), forward(x, **kw))[1])
    monkeypatch.setattr(engine._transfer, "download", lambda t: (events.append("download"), download(t))[1])
    from irx.engine import tiling

    add = tiling.BlendCanvas.add
    monkeypatch.setattr(tiling.BlendCanvas, "add", lambda self, b, o: (events.append("blend"), add(self, b, o))[1])
    out = engine.restore_one(make_image(64, 64))  # 3 x 3 tiles in batches of 2: 5 batches
    assert events[:5] == ["forward", "download", "forward", "download", "blend"]
    assert events.count("blend") == 5
    assert np.abs(out - numpy_blend(engine, make_image(64, 64), 32)).max() < 1e-5


# ---------------------------------------------------------------------- channels_last
@pytest.mark.parametrize("model_name", ["denoiser", "upscaler"])
def test_channels_last_matches_contiguous(model_name, request, tiny_denoiser, tiny_upscaler):
    path = tiny_denoiser if model_name == "denoiser" else tiny_upscaler
    image = make_image(40, 52)
    contiguous = Engine(ModelLoader().load_from_file(path), device="cpu", tile=0).restore_one(image)
    model = ModelLoader().load_from_file(path)
    engine = Engine(model, device="cpu", tile=0, channels_last=True)
    conv = next(m for m in model.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(engine.restore_one(image) - contiguous).max() < 1e-5


# ---------------------------------------------------------------------- torch.compile
def test_compile_failure_at_first_call_falls_back_to_eager_with_one_warning(denoiser, monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(x):
            raise RuntimeError("inductor exploded\nlong traceback")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    image = make_image(30, 40)
    expected = Engine(denoiser, device="cpu", tile=0).restore_one(image)
    engine = Engine(denoiser, device="cpu", tile=0, compile=True)
    assert engine.compiling
    with pytest.warns(IrxWarning, match="torch.compile failed .*inductor exploded"):
        out = engine.restore_one(image)
    assert not engine.compiling
    assert np.array_equal(out, expected)  # eager from the first failure on, on the unbucketed shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(engine.restore_one(image), expected)


def test_compile_failure_puts_the_dispatcher_state_back(denoiser, monkeypatch):
    """A real inductor failure can leave a thread-local dispatch key on, which breaks every eager call after it."""
    key = torch._C.DispatchKey.PythonDispatcher

    def leaky_compile(fn, **kwargs):
        def run(x):
            torch._C._dispatch_tls_set_dispatch_key_included(key, True)
            raise RuntimeError("backend='inductor' raised")

        return run

    monkeypatch.setattr(torch, "compile", leaky_compile)
    image = make_image(24, 24)
    expected = Engine(denoiser, device="cpu", tile=0).restore_one(image)
    with pytest.warns(IrxWarning, match="torch.compile failed"):
        out = Engine(denoiser, device="cpu", tile=0, compile=True).restore_one(image)
    assert not torch._C._dispatch_tls_is_dispatch_key_included(key)
    assert np.array_equal(out, expected)


def test_compile_failure_when_wrapping_falls_back_too(denoiser, monkeypatch):
    def unavailable(fn, **kwargs):
        raise RuntimeError("Python 3.99 is not supported by torch.compile")

    monkeypatch.setattr(torch, "compile", unavailable)
    with pytest.warns(IrxWarning, match="not supported"):
        engine = Engine(denoiser, device="cpu", tile=0, compile=True)
    assert not engine.compiling
    assert engine.restore_one(make_image(16, 16)).shape == (16, 16, 3)


def test_compiled_calls_see_bucketed_shapes_only(upscaler, monkeypatch):
    seen: list[tuple[int, ...]] = []

    def recording_compile(fn, **kwargs):
        assert kwargs.get("dynamic") is False
        return lambda x: (seen.append(tuple(x.shape)), fn(x))[1]

    monkeypatch.setattr(torch, "compile", recording_compile)
    engine = Engine(upscaler, device="cpu", tile=0, batch_size=3, compile=True)
    eager = Engine(upscaler, device="cpu", tile=0)
    images = [make_image(50, 70, seed=i) for i in range(3)] + [make_image(61, 33)]
    results = engine.restore(images)
    # sides to multiples of SPATIAL_BUCKET; the odd image is padded to the planned batch: one shape per size
    assert seen == [(3, 3, 64, 128), (3, 3, 64, 64)]
    for image, out in zip(images, results):
        expected = eager.restore_one(image)
        assert out.shape == expected.shape
        # Padding only changes what the receptive field sees near the bottom and right edges.
        assert np.abs(out - expected)[:-16, :-16].max() < 1e-5
    assert all(side % SPATIAL_BUCKET == 0 for shape in seen for side in shape[2:])


def test_compiled_batches_are_padded_to_the_planned_batch(denoiser, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: lambda x: (seen.append(x.shape[0]), fn(x))[1])
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=5, compile=True)
    for count in (5, 2, 1, 3):  # what a pipeline hands over depends on what has been decoded
        engine.restore([make_image(20, 20, seed=i) for i in range(count)])
    assert seen == [5, 5, 5, 5]


def test_compile_keeps_tiles_on_bucket_multiples(denoiser, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    engine = Engine(denoiser, device="cpu", tile=100, compile=True)
    assert engine.tile_size_for(300, 300) == 64


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="inductor needs a C compiler")
def test_a_real_compile_matches_eager():
    """A two-layer model through inductor on the CPU: ~15 s the first time, ~2 s with inductor's cache warm."""

    class Tiny:
        scale, input_channels, output_channels = 1, 3, 3
        supports_half = supports_bfloat16 = False
        size_requirements = None

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                             torch.nn.Conv2d(4, 3, 3, padding=1))

        def to(self, *args, **kwargs):
            self.model.to(*args, **kwargs)
            return self

        def eval(self):
            self.model.eval()
            return self

        def __call__(self, x):
            return self.model(x).clamp(0, 1)

    image = make_image(64, 64)
    engine = Engine(Tiny(), device="cpu", tile=0, compile=True)
    out = engine.restore_one(image)
    assert engine.compiling, "the compiler fell back: see the warning"
    expected = Engine(Tiny(), device="cpu", tile=0).restore_one(image)
    assert np.abs(out - expected).max() < 1e-5


# ---------------------------------------------------------------------- CUDA: pinned memory, side streams
@cuda
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
@pytest.mark.parametrize("tile", [0, 32])
def test_cuda_matches_cpu_in_every_pixel_dtype(denoiser, tile, dtype):
    image = make_image(75, 101)
    if dtype != np.float32:
        image = as_uint(image, dtype)
    cpu = Engine(denoiser, device="cpu", tile=tile).restore_one(image)
    gpu = Engine(denoiser, device="cuda", precision="fp32", tile=tile).restore_one(image)
    Engine(denoiser, device="cpu")  # put the shared descriptor back on the CPU for the other tests
    assert gpu.dtype == cpu.dtype
    tolerance = 1e-4 if dtype == np.float32 else 1
    assert np.abs(gpu.astype(np.float64) - cpu.astype(np.float64)).max() <= tolerance


@cuda
def test_cuda_device_blend_equals_host_blend(upscaler):
    image = make_image(75, 101)
    results = {}
    for on_device in (True, False):
        engine = Engine(upscaler, device="cuda", precision="fp32", tile=32, tile_overlap=8, batch_size=3)
        engine._tiles_on_device = lambda *args, on_device=on_device: on_device  # type: ignore[method-assign]
        results[on_device] = engine.restore_one(image)
    Engine(upscaler, device="cpu")
    assert np.abs(results[True] - results[False]).max() < 1e-5
    assert engine._weights.misses > 0 and engine._weights.hits > 0


@cuda
def test_cuda_results_come_back_through_pinned_memory_and_overlap_safely(denoiser):
    engine = Engine(denoiser, device="cuda", precision="fp32", tile=0, batch_size=4)
    batches = [[as_uint(make_image(64, 64, seed=4 * b + i), np.uint8) for i in range(4)] for b in range(6)]
    pending = [engine.submit(batch) for batch in batches]  # all enqueued before any result is read
    downloads = [d for p in pending for part, _ in p._parts for d in part]
    assert downloads and all(d.tensor.is_pinned() and d.done is not None for d in downloads)
    overlapped = [p.result() for p in pending]
    sequential = [engine.restore(batch) for batch in batches]
    Engine(denoiser, device="cpu")
    for got, want in zip(overlapped, sequential):
        for a, b in zip(got, want):
            assert np.array_equal(a, b)


@cuda
def test_cuda_channels_last_and_fp16_stay_close_to_fp32(tiny_upscaler):
    image = make_image(64, 80)
    fp32 = Engine(ModelLoader().load_from_file(tiny_upscaler), device="cuda", precision="fp32").restore_one(image)
    fast = Engine(ModelLoader().load_from_file(tiny_upscaler), device="cuda", precision="fp16",
                  channels_last=True).restore_one(image)
    assert np.abs(fast - fp32).max() < 1e-2
