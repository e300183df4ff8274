"""Tests of irx.train: config validation, deterministic batches, exact resume, EMA, export."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from irx.errors import UsageError
from irx.train import EMA, Trainer, lr_at
from irx.train.config import RECIPES_DIR, config_from_dict, load_config
from irx.train.export import export_checkpoint
from irx.train.trainer import (
    CHECKPOINT_NAME,
    LOG_NAME,
    PLOT_NAME,
    load_checkpoint,
    read_log,
)

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """A residual two-layer conv net: small enough to train in a test."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def tiny_model(cfg: Any) -> nn.Module:
    return TinyNet()


def make_images(root: Path, n: int = 3, size: int = 40) -> Path:
    """Smooth gradients with a few rectangles: structure a denoiser can learn."""
    folder = root / "photos" / "set"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.stack([xx * (i + 1) % 1, yy, 0.5 + 0.3 * np.sin(6 * xx + i)], axis=-1)
        for _ in range(3):
            y, x = rng.integers(0, size - 10, 2)
            img[y : y + 10, x : x + 10] = rng.random(3)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return root / "photos"


def make_config(tmp: Path, **train: Any) -> Any:
    raw = {
        "model": {"arch": "laformer", "variant": "tiny"},
        "data": {"train_dirs": ["set"], "patch_size": 16, "batch_size": 2, "val_fraction": 0.0,
                 "max_side": 64, "val_crop": 32},
        "degradation": {"task": "denoise", "params": {"sigma": [10.0, 30.0]}},
        "train": {"iterations": 6, "lr": 1e-3, "warmup": 2, "ema_decay": 0.9, "val_every": 100,
                  "ckpt_every": 3, "log_every": 1, "seed": 7, "threads": 1} | train,
        "output": {"dir": str(tmp / "run"), "export_name": "tiny_test", "export_dir": str(tmp / "export")},
    }
    return config_from_dict(raw, data_root=tmp / "photos")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    make_images(tmp_path)
    return tmp_path


def run(cfg: Any, resume: bool = False, model_factory=tiny_model, stop_at: int | None = None) -> Trainer:
    trainer = Trainer(cfg, device="cpu", model_factory=model_factory, quiet=True)
    trainer.fit(resume=resume, stop_at=stop_at)
    return trainer


# ------------------------------------------------------------------ config


def test_unknown_keys_are_named(data: Path) -> None:
    base = {"data": {"train_dirs": ["set"]}}
    with pytest.raises(UsageError, match="train.iteratons"):
        config_from_dict(base | {"train": {"iteratons": 5}}, data_root=data)
    with pytest.raises(UsageError, match="optim"):
        config_from_dict(base | {"optim": {}}, data_root=data)
    with pytest.raises(UsageError, match="wrong type"):
        config_from_dict(base | {"train": {"lr": "fast"}}, data_root=data)
    with pytest.raises(UsageError, match="loss"):
        config_from_dict(base | {"train": {"loss": "mse"}}, data_root=data)
    with pytest.raises(UsageError, match="downscale"):
        config_from_dict({"data": {"train_dirs": [{"path": "set", "downscale": 2.0}]}}, data_root=data)
    with pytest.raises(UsageError, match="scale"):
        config_from_dict(base | {"model": {"scale": 2}}, data_root=data)


def test_data_root_priority(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"data": {"train_dirs": ["a", {"path": "b", "downscale": 0.5}]}}
    monkeypatch.setenv("IRX_DATA_ROOT", "/env/root")
    cfg = config_from_dict(raw)
    assert [str(d.path) for d in cfg.data.train_dirs] == ["/env/root/a", "/env/root/b"]
    assert cfg.data.train_dirs[1].downscale == 0.5
    cfg = config_from_dict(raw, data_root="/cli/root")
    assert str(cfg.data.train_dirs[0].path) == "/cli/root/a"


def test_bundled_recipes_parse() -> None:
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
    for task in ("denoise", "dejpeg", "upscale_x2", "upscale_x4", "deblur", "derain", "dehaze", "lowlight"):
        assert task in names
    for name in names:
        cfg = load_config(name, data_root="/data")
        assert cfg.train.iterations > 0 and cfg.data.train_dirs
        assert all("eval" not in d.path.parts for d in cfg.data.train_dirs)
    assert load_config("upscale_x4").model.scale == 4


def test_lr_schedule() -> None:
    lrs = [lr_at(s, 1e-3, 1e-5, 10, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)
    assert lrs[-1] > 1e-5 and lr_at(110, 1e-3, 1e-5, 10, 110) == pytest.approx(1e-5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # decreasing after warmup


# ------------------------------------------------------------------ data and EMA


def test_batches_depend_only_on_seed_and_step(data: Path) -> None:
    trainer = Trainer(make_config(data), device="cpu", model_factory=tiny_model, quiet=True)
    trainer.build()
    a_lq, a_gt = trainer.batches[5]
    trainer.batches[2]  # drawing other steps in between changes nothing
    b_lq, b_gt = trainer.batches[5]
    assert torch.equal(a_lq, b_lq) and torch.equal(a_gt, b_gt)
    assert a_lq.shape == (2, 3, 16, 16)
    assert not torch.equal(trainer.batches[6][1], a_gt)
    noise = (a_lq - a_gt).std().item() * 255  # sigma drawn from 10-30 (clipping lowers it a little)
    assert 5 < noise < 32


def test_ema_follows_formula() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    expected = 1.0
    for value in (2.0, 5.0, -1.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        expected = 0.9 * expected + 0.1 * value
        assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.module.weight.item() != model.weight.item()


def test_ema_warms_up_so_short_runs_forget_the_initial_weights() -> None:
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(90) == pytest.approx(0.91)
    assert ema.decay_at(10**6) == pytest.approx(0.999)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(1, 201):
        ema.update(model, step=step)
    # Plain decay 0.999 would still be at 1 - 0.999**200 = 0.18; the warmed-up average is near 1.
    assert ema.module.weight.item() > 0.8


# ------------------------------------------------------------------ training


def small_laformer(cfg: Any) -> nn.Module:
    from irx.archs import build_model

    return build_model("laformer", "tiny", dim=8, depths=(1, 1), heads=(1, 1))


def test_training_lowers_loss_on_fixed_batch(data: Path) -> None:
    trainer = Trainer(make_config(data, lr=2e-3, warmup=0, iterations=30), device="cpu",
                      model_factory=small_laformer, quiet=True)
    trainer.build()
    degraded, clean = trainer.batches[0]
    first = trainer.train_step(degraded, clean)
    for _ in range(29):
        last = trainer.train_step(degraded, clean)
    assert last < 0.6 * first, (first, last)  # measured: about 0.41
    # The EMA trails the raw weights.
    raw = dict(trainer.raw_model.named_parameters())
    assert any(not torch.equal(p, raw[k]) for k, p in trainer.ema.module.named_parameters())


def test_resume_reproduces_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    # log_every=2 and a stop at step 3: the logged mean loss of steps 3-4 spans the restart.
    full = run(make_config(data, log_every=2))
    full_ckpt = load_checkpoint(full.ckpt_path)
    full_log = read_log(full.out_dir / LOG_NAME)

    cfg = make_config(data, log_every=2)
    cfg.output.dir = tmp_path / "split"
    run(cfg, stop_at=3)  # interrupted after step 3 (ckpt_every=3)
    assert load_checkpoint(cfg.output.dir / CHECKPOINT_NAME)["step"] == 3
    run(cfg, resume=True)  # a fresh Trainer: nothing carried over in memory
    split_ckpt = load_checkpoint(cfg.output.dir / CHECKPOINT_NAME)
    split_log = read_log(cfg.output.dir / LOG_NAME)

    assert split_ckpt["step"] == full_ckpt["step"] == 6
    for key in ("model", "ema"):
        for name, tensor in full_ckpt[key].items():
            assert torch.equal(tensor, split_ckpt[key][name]), (key, name)
    assert [r["step"] for r in split_log] == [2, 4, 6]
    assert [r["loss"] for r in split_log] == [r["loss"] for r in full_log]
    assert [r["lr"] for r in split_log] == [r["lr"] for r in full_log]


def test_refuses_to_overwrite_and_checkpoint_is_atomic(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(data, iterations=3)
    trainer = run(cfg)
    before = trainer.ckpt_path.read_bytes()
    with pytest.raises(UsageError, match="--resume"):
        run(cfg)

    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    cfg.train.iterations = 6
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(cfg, resume=True)
    assert trainer.ckpt_path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in trainer.out_dir.iterdir() if p.name.startswith(".")] == []


def test_validation_plot_and_export(data: Path) -> None:
    pytest.importorskip("irx.metrics", reason="irx.metrics not available yet")
    cfg = make_config(data, iterations=4, val_every=2)
    cfg.data.val_fraction = 0.34  # one of three images held out
    trainer = run(cfg)
    assert len(trainer.val_pairs) == 1 and len(trainer.train_cache) == 2
    log = read_log(trainer.out_dir / LOG_NAME)
    vals = [r["val_psnr"] for r in log if r["val_psnr"] is not None]
    assert len(vals) == 2 and all(15 < v < 60 for v in vals)
    assert (trainer.out_dir / PLOT_NAME).stat().st_size > 1000

    weights, record_path = export_checkpoint(cfg)
    record = json.loads(record_path.read_text())
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["name"] == "tiny_test" and record["tasks"] == ["denoise"] and record["source"] == "bundled"
    assert record["filename"] == weights.name and record["training"]["steps"] == 4
    assert record["metrics"]["psnr_val"] == pytest.approx(vals[-1], abs=1e-3)
    from safetensors.torch import load_file

    tensors = load_file(weights)
    ema = trainer.ema.module.state_dict()
    assert tensors.keys() == ema.keys() and all(torch.equal(tensors[k], ema[k]) for k in ema)


def test_exported_laformer_loads_through_spandrel(data: Path) -> None:
    archs = pytest.importorskip("irx.archs", reason="irx.archs not available")
    spandrel = pytest.importorskip("spandrel")
    cfg = make_config(data, iterations=2)
    cfg.model.overrides = {"dim": 8, "depths": [1, 1], "heads": [1, 1]}
    trainer = Trainer(cfg, device="cpu", quiet=True)  # the recipe's own model: irx.archs.build_model
    trainer.fit()
    weights, _ = export_checkpoint(cfg)
    archs.register_spandrel()
    loaded = spandrel.ModelLoader().load_from_file(weights)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = trainer.ema.module(x)
        got = loaded.model.eval()(x)
    assert loaded.scale == 1 and torch.allclose(got, expected, atol=1e-6)


def test_float16_export_halves_the_file_and_loads_as_float32(data: Path) -> None:
    archs = pytest.importorskip("irx.archs", reason="irx.archs not available")
    spandrel = pytest.importorskip("spandrel")
    cfg = make_config(data, iterations=2)
    cfg.model.overrides = {"dim": 8, "depths": [1, 1], "heads": [1, 1]}
    trainer = Trainer(cfg, device="cpu", quiet=True)
    trainer.fit()
    full, _ = export_checkpoint(cfg)
    full_size = full.stat().st_size
    cfg.output.export_dtype = "float16"
    half, record_path = export_checkpoint(cfg)
    assert half == full and half.stat().st_size < 0.6 * full_size
    assert json.loads(record_path.read_text())["sha256"] == hashlib.sha256(half.read_bytes()).hexdigest()
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(half).values() if t.is_floating_point()} == {torch.float16}
    archs.register_spandrel()
    loaded = spandrel.ModelLoader().load_from_file(half)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}  # computes in float32 on CPU
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        diff = (loaded.model.eval()(x) - trainer.ema.module(x)).abs().max().item()
    assert 0 < diff < 1 / 255  # rounded weights, yet within one uint8 level


def test_init_weights_fine_tunes_from_an_exported_model(data: Path, tmp_path: Path) -> None:
    cfg = make_config(data, iterations=2)
    cfg.model.overrides = {"dim": 8, "depths": [1, 1], "heads": [1, 1]}
    Trainer(cfg, device="cpu", quiet=True).fit()
    weights, _ = export_checkpoint(cfg)
    from safetensors.torch import load_file

    exported = load_file(weights)

    tuned = make_config(data, iterations=2, init_weights=str(weights))
    tuned.model.overrides = dict(cfg.model.overrides)
    tuned.output.dir = tmp_path / "tuned"
    trainer = Trainer(tuned, device="cpu", quiet=True)
    trainer.build()
    for name, tensor in trainer.raw_model.state_dict().items():
        assert torch.equal(tensor, exported[name]), name
    assert all(torch.equal(p, exported[k]) for k, p in trainer.ema.module.state_dict().items())

    other = make_config(data, iterations=2, init_weights=str(weights))  # the tiny variant: other shapes
    other.output.dir = tmp_path / "other"
    with pytest.raises(UsageError, match="does not fit the recipe's model"):
        Trainer(other, device="cpu", quiet=True).build()
    bad = make_config(data, iterations=2, init_weights=str(tmp_path / "weights.pth"))
    with pytest.raises(UsageError, match=r"\.safetensors file"):
        Trainer(bad, device="cpu", quiet=True).build()


def test_export_dtype_is_validated(data: Path) -> None:
    raw = {
        "data": {"train_dirs": ["set"]},
        "output": {"export_dtype": "int8"},
    }
    with pytest.raises(UsageError, match="export_dtype must be float32 or float16"):
        config_from_dict(raw, data_root=data / "photos")


# ------------------------------------------------------------------ time limit


def test_plan_iterations_fits_the_time_left_within_bounds() -> None:
    from irx.train.trainer import plan_iterations

    assert plan_iterations(120, rate=10.0, seconds_left=60.0, cap=10_000, margin=0.95) == 120 + 570
    assert plan_iterations(120, rate=10.0, seconds_left=60.0, cap=500) == 500  # never past the recipe's cap
    assert plan_iterations(120, rate=10.0, seconds_left=-5.0, cap=500) == 121  # out of time: one more step


class ClockedTrainer(Trainer):
    """Each training step takes `step_seconds` of a fake clock (slower after `slow_from`)."""

    def __init__(self, *args: Any, clock: list[float], slow_from: int = 10**9, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.slow_from = slow_from

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        self.clock[0] += 3.0 if self.step >= self.slow_from else 1.0
        return super().train_step(degraded, clean)


def test_time_limit_plans_the_schedule_to_end_in_time(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("irx.train.trainer.time.perf_counter", lambda: clock[0])
    cfg = make_config(data, iterations=1000, time_limit=150.0, warmup=130, ckpt_every=1000, log_every=10)
    trainer = ClockedTrainer(cfg, device="cpu", model_factory=tiny_model, quiet=True, clock=clock)
    result = trainer.fit()
    # 1 step/s measured over steps 20-120, 30 s left at step 120: 120 + int(30 * 0.95) = 148.
    assert result.step == 148 and not result.stopped_by_time
    ckpt = load_checkpoint(trainer.ckpt_path)
    assert ckpt["step"] == 148 and ckpt["config"]["train"]["iterations"] == 148
    # The cosine ended at the planned step: the last update ran at (nearly) min_lr.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr_at(148, 1e-3, 1e-6, 130, 148))
    assert lr_at(147, 1e-3, 1e-6, 130, 148) < 1e-5


def test_time_limit_stops_early_and_saves_when_steps_slow_down(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("irx.train.trainer.time.perf_counter", lambda: clock[0])
    cfg = make_config(data, iterations=1000, time_limit=150.0, warmup=130, ckpt_every=1000, log_every=1)
    trainer = ClockedTrainer(cfg, device="cpu", model_factory=tiny_model, quiet=True, clock=clock, slow_from=120)
    result = trainer.fit()
    # Planned 148 at step 120 (t = 120), then 3 s per step: the deadline (t = 150) falls at step 130.
    assert result.stopped_by_time and result.step == 130
    assert load_checkpoint(trainer.ckpt_path)["step"] == 130
    assert read_log(trainer.out_dir / LOG_NAME)[-1]["step"] == 130


def test_time_limit_option_parses_durations() -> None:
    from irx.cli.train import parse_duration

    assert parse_duration("90") == 90.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("8m") == 480.0
    assert parse_duration("1.5h") == 5400.0
    for bad in ("soon", "-3m", "0", "m"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(UsageError, match="train.iterations must be >= 1"):
        load_config("denoise", iterations=0)
    with pytest.raises(UsageError, match="train.time_limit must be >= 0"):
        load_config("denoise", time_limit=-1.0)
    cfg = load_config("denoise", iterations=7, time_limit=30.0, init_weights="w.safetensors")
    assert (cfg.train.iterations, cfg.train.time_limit, cfg.train.init_weights) == (7, 30.0, "w.safetensors")
