"""Engine: tiled inference agrees with whole-image inference, OOM recovery, batching, channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spandrel import ModelLoader

from irx.engine import Engine
from irx.engine.tiling import blend_weight, tile_boxes, tile_starts
from irx.errors import ModelError, UsageError
from tests.conftest import make_image


@pytest.fixture(scope="module")
def denoiser(tiny_denoiser):
    return ModelLoader().load_from_file(tiny_denoiser)


@pytest.fixture(scope="module")
def upscaler(tiny_upscaler):
    return ModelLoader().load_from_file(tiny_upscaler)


def test_tile_starts_cover_and_overlap():
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))
    assert tile_starts(20, 32, 8) == [0]


def test_boxes_cover_every_pixel():
    covered = np.zeros((70, 90), bool)
    for box in tile_boxes(70, 90, 32, 8):
        covered[box.y0 : box.y1, box.x0 : box.x1] = True
        assert box.shape[0] <= 32 and box.shape[1] <= 32
    assert covered.all()


def test_blend_weights_form_a_partition_of_unity_between_two_tiles():
    boxes = tile_boxes(1, 56, 32, 8)  # starts 0 and 24: an 8 px overlap
    assert [b.x0 for b in boxes] == [0, 24]
    total = torch.zeros(56)
    for box in boxes:
        total[box.x0 : box.x1] += blend_weight(box, 1, 56, 8, 1)[0, 0]
    assert torch.allclose(total, torch.ones(56), atol=1e-6)


@pytest.mark.parametrize("model_name", ["denoiser", "upscaler"])
def test_tiled_matches_untiled(model_name, request):
    model = request.getfixturevalue(model_name)
    image = make_image(75, 101)
    whole = Engine(model, device="cpu", tile=0).restore_one(image)
    tiled = Engine(model, device="cpu", tile=32, tile_overlap=16).restore_one(image)
    assert whole.shape == (75 * model.scale, 101 * model.scale, 3)
    # Seams would show up as large local errors; blended tiles differ only where padding leaked in.
    assert np.abs(whole - tiled).max() < 5e-3
    assert np.abs(whole - tiled).mean() < 1e-4


def test_without_overlap_tiles_differ_more(denoiser):
    image = make_image(64, 64)
    whole = Engine(denoiser, device="cpu", tile=0).restore_one(image)
    no_overlap = Engine(denoiser, device="cpu", tile=32, tile_overlap=0).restore_one(image)
    blended = Engine(denoiser, device="cpu", tile=32, tile_overlap=16).restore_one(image)
    assert np.abs(whole - no_overlap).max() > 3 * np.abs(whole - blended).max()


class _OomOnLargeInputs:
    """Wrap a descriptor so that forward passes over `limit` pixels raise CUDA's out-of-memory error."""

    def __init__(self, inner, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.calls: list[tuple[int, ...]] = []
        for name in ("scale", "input_channels", "output_channels", "supports_half", "supports_bfloat16", "size_requirements"):
            setattr(self, name, getattr(inner, name))

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_halves_tile_and_redoes_the_work(denoiser):
    image = make_image(96, 96)
    expected = Engine(denoiser, device="cpu", tile=0).restore_one(image)
    flaky = _OomOnLargeInputs(denoiser, limit=40 * 40)
    result = Engine(flaky, device="cpu", tile=0, tile_overlap=8).restore_one(image)
    assert result.shape == expected.shape
    assert np.abs(result - expected).max() < 5e-3  # no stale or missing tiles
    sizes = [c[2] for c in flaky.calls]
    assert sizes[0] == 96 and min(sizes) <= 40  # started whole, backed off to small tiles


def test_out_of_memory_halves_the_batch_first(denoiser):
    images = [make_image(32, 32, seed=i) for i in range(4)]
    flaky = _OomOnLargeInputs(denoiser, limit=2 * 32 * 32)
    results = Engine(flaky, device="cpu", tile=0, batch_size=4).restore(images)
    single = [Engine(denoiser, device="cpu", tile=0).restore_one(img) for img in images]
    for a, b in zip(results, single):
        assert np.abs(a - b).max() < 1e-5
    assert [c[0] for c in flaky.calls][:2] == [4, 2]


def test_out_of_memory_at_the_smallest_tile_gives_a_clear_error(denoiser):
    flaky = _OomOnLargeInputs(denoiser, limit=0)
    with pytest.raises(ModelError, match="out of memory"):
        Engine(flaky, device="cpu", tile=64).restore_one(make_image(64, 64))


def test_batches_same_size_images_and_matches_single(denoiser):
    calls = []
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=8, on_tiles=calls.append)
    images = [make_image(24, 24, seed=i) for i in range(3)] + [make_image(20, 24, seed=9)]
    results = engine.restore(images)
    assert calls == [3, 1]  # one batch of three, then the odd-sized image
    for image, result in zip(images, results):
        alone = Engine(denoiser, device="cpu", tile=0).restore_one(image)
        assert np.abs(alone - result).max() < 1e-5


def test_grey_stays_grey(denoiser, upscaler):
    grey = make_image(20, 30, channels=1)
    assert Engine(denoiser, device="cpu").restore_one(grey).shape == (20, 30, 1)
    assert Engine(upscaler, device="cpu").restore_one(grey).shape == (40, 60, 1)


def test_size_requirements_are_met_by_padding(denoiser):
    from spandrel import SizeRequirements

    seen = []

    class Strict(_OomOnLargeInputs):
        def __call__(self, x):
            seen.append(tuple(x.shape[2:]))
            assert x.shape[2] % 8 == 0 and x.shape[3] % 8 == 0 and min(x.shape[2:]) >= 16
            return self.inner(x)

    strict = Strict(denoiser, limit=10**9)
    strict.size_requirements = SizeRequirements(minimum=16, multiple_of=8)
    out = Engine(strict, device="cpu").restore_one(make_image(13, 21))
    assert out.shape == (13, 21, 3) and seen == [(16, 24)]


@pytest.mark.parametrize("bad", [{"tile": "big"}, {"tile": 8}, {"batch_size": 0}, {"device": "gpu"}, {"precision": "fp8"}])
def test_bad_options_are_usage_errors(denoiser, bad):
    with pytest.raises(UsageError):
        Engine(denoiser, **{"device": "cpu", **bad})


def test_fingerprint_follows_the_weights(tiny_denoiser):
    first = ModelLoader().load_from_file(tiny_denoiser)
    second = ModelLoader().load_from_file(tiny_denoiser)
    assert Engine(first, device="cpu").fingerprint == Engine(second, device="cpu").fingerprint
    with torch.no_grad():
        next(second.model.parameters()).add_(1e-3)
    assert Engine(first, device="cpu").fingerprint != Engine(second, device="cpu").fingerprint
