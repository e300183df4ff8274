"""The resumable trainer: AdamW + warmup + cosine, EMA, validation, atomic checkpoints, DDP, AMP.

Exact restarts: batches are a function of (seed, step) (see irx.train.data), and a checkpoint
holds everything else that evolves (weights, EMA, optimizer, scheduler, torch RNG, the running
loss window, the elapsed time). Resuming at step N therefore reproduces the uninterrupted run
bit for bit on CPU with the same thread count.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from irx.errors import UsageError
from irx.media.atomic import atomic_write_bytes
from irx.tasks import get_task
from irx.train.config import RunConfig
from irx.train.data import (
    BatchMaker,
    ImageCache,
    center_crop,
    list_images,
    split_train_val,
    to_tensor,
)

CHECKPOINT_NAME = "latest.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "progress.png"
LOG_FIELDS = ("step", "loss", "lr", "val_psnr", "seconds")

ModelFactory = Callable[[RunConfig], nn.Module]
DegradationFactory = Callable[[str, dict[str, Any]], Any]


# --------------------------------------------------------------------------- building blocks


def build_model(cfg: RunConfig) -> nn.Module:
    """The network a recipe names, through irx.archs.build_model."""
    from irx.archs import build_model as arch_build

    m = cfg.model
    try:
        return arch_build(m.arch, variant=m.variant, scale=m.scale, in_chans=m.in_chans, **m.overrides)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot build model {m.arch}/{m.variant} with overrides {m.overrides}: {exc}") from exc


def make_degradation(task: str, params: dict[str, Any]) -> Any:
    """A degradation callable for `task` through irx.degrade.make_degradation."""
    from irx import degrade

    try:
        return degrade.make_degradation(task, **params)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad degradation parameters for {task}: {params} ({exc})") from exc


def default_params(task: str, kind: str) -> dict[str, Any]:
    """irx.degrade's DEFAULT_TRAIN_PARAMS or DEFAULT_EVAL_PARAMS for `task` (kind "train"/"eval")."""
    from irx import degrade

    table = degrade.DEFAULT_TRAIN_PARAMS if kind == "train" else degrade.DEFAULT_EVAL_PARAMS
    return dict(table.get(task, {}))


def lr_at(step: int, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Learning rate of the update made at 0-based `step`: linear warmup, then cosine to min_lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TimeBudget:
    """Fits a run into a wall-clock budget: plans the iteration count from the measured step rate.

    The rate is measured over `probe` steps after `skip` warm-up steps (data-loader start, CUDA
    initialisation). The planned count then fixes the cosine schedule; with train.warmup at least
    skip + probe, the schedule before the plan does not depend on it. `expired` is the backstop
    when steps slow down later (validation, a busy machine).
    """

    def __init__(self, seconds: float, started: float, first_step: int, skip: int = 20, probe: int = 100,
                 margin: float = 0.95) -> None:
        self.deadline = started + seconds
        self.probe_from = first_step + skip
        self.probe_to = self.probe_from + probe
        self.margin = margin
        self.probe_start: float | None = None
        self.planned: int | None = None
        self.rate: float | None = None

    def observe(self, step: int, now: float, cap: int) -> int | None:
        """Call after each step; returns the planned iteration count once, at the end of the probe."""
        if self.planned is not None:
            return None
        if step == self.probe_from:
            self.probe_start = now
        elif step == self.probe_to and self.probe_start is not None:
            self.rate = (self.probe_to - self.probe_from) / max(1e-9, now - self.probe_start)
            self.planned = plan_iterations(step, self.rate, self.deadline - now, cap, self.margin)
            return self.planned
        return None

    def expired(self, now: float) -> bool:
        return now >= self.deadline


def plan_iterations(step: int, rate: float, seconds_left: float, cap: int, margin: float = 0.95) -> int:
    """Iterations that fit `seconds_left` at `rate` steps/s (times `margin`), at least step + 1, at most `cap`."""
    more = int(max(0.0, seconds_left) * rate * margin)
    return max(step + 1, min(cap, step + more))


class EMA:
    """Exponential moving average of a model's weights: ema = d * ema + (1 - d) * param.

    d = min(decay, (1 + step) / (10 + step)) warms up: without it, a short run's average (2k steps at
    decay 0.999) still holds a third of the random initial weights and scores below the raw model.
    Buffers (e.g. norm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        d = self.decay if step is None else self.decay_at(step)
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers()):
            ema_b.copy_(b)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return charbonnier if name == "charbonnier" else F.l1_loss


def resolve_device(device: str, world_size: int = 1, local_rank: int = 0) -> torch.device:
    """The one device this training process uses, with the same meaning of `device` as `irx <task>`
    (irx.engine.resolve_devices: `cuda` = the visible GPUs): under torchrun its LOCAL_RANK's GPU, else the first."""
    from irx.engine.device import rank_devices, resolve_devices

    return rank_devices(resolve_devices(device), world_size, local_rank)[0]


def load_initial_weights(model: nn.Module, path: Path) -> None:
    """Fine-tuning: load a safetensors state dict (no code runs) into `model`, all keys and shapes matching."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.suffix != ".safetensors":
        raise UsageError(f"train.init_weights must be a .safetensors file, got {path}")
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise UsageError(f"cannot read train.init_weights {path}: {exc}") from exc
    try:
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"train.init_weights {path} does not fit the recipe's model: {first}") from exc


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save `state` atomically: a crash leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing code (weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(f"cannot load checkpoint {path}: {exc}; delete it to start over") from exc


# --------------------------------------------------------------------------- the trainer


@dataclass
class TrainResult:
    step: int
    seconds: float
    val_psnr: float | None
    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    exported: tuple[Path, Path] | None = None  # (weights, record), set by irx.train.train
    stopped_by_time: bool = False  # train.time_limit ran out before the planned last step


class Trainer:
    """Trains one recipe; `model_factory` and `degradation_factory` are for tests and experiments."""

    def __init__(
        self,
        cfg: RunConfig,
        device: str = "auto",
        model_factory: ModelFactory | None = None,
        degradation_factory: DegradationFactory | None = None,
        quiet: bool = False,
    ) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device, self.world_size, self.local_rank)
        self.model_factory = model_factory or build_model
        self.degradation_factory = degradation_factory or make_degradation
        self.out_dir = Path(cfg.output.dir)
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.elapsed = 0.0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.last_val: float | None = None
        self.best_val: float | None = None
        self.input_val: float | None = None
        self.stopped_by_time = False  # set when train.time_limit ran out before the planned end

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ setup

    def _init_distributed(self) -> None:
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)

    def build(self) -> None:
        """Data, model, EMA, optimizer and scheduler, in a fixed order (so init is seeded)."""
        cfg, t = self.cfg, self.cfg.train
        if t.threads > 0:
            torch.set_num_threads(t.threads)
            import cv2

            cv2.setNumThreads(t.threads)
        self._init_distributed()
        self._build_data()
        torch.manual_seed(t.seed)
        model = self.model_factory(cfg)
        if t.init_weights:
            load_initial_weights(model, Path(t.init_weights))
        model = model.to(self.device)
        self.raw_model = model
        self.ema = EMA(model, t.ema_decay)
        self.model: nn.Module = model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_at(s, t.lr, t.min_lr, t.warmup, t.iterations) / t.lr
        )
        self.criterion = loss_fn(t.loss)
        self.amp_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its fastest kernels
        if self.device.type == "cuda" and t.amp != "off":
            self.amp_dtype = torch.bfloat16 if t.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def _build_data(self) -> None:
        cfg, d = self.cfg, self.cfg.data
        min_side = max(8, int(d.patch_size * d.rescale[0]) // 2)
        items: list[tuple[Path, float]] = []
        for entry in d.train_dirs:
            items += [(p, entry.downscale) for p in list_images(entry.path)]
        if not items:
            raise UsageError(f"no images found in data.train_dirs ({', '.join(str(e.path) for e in d.train_dirs)})")
        if d.val_dir is not None:
            train_items = items
            val_items = [(p, 1.0) for p in list_images(d.val_dir)]
        else:
            train_idx, val_idx = split_train_val([p for p, _ in items], d.val_fraction, cfg.train.seed)
            train_items = [items[i] for i in train_idx]
            val_items = [items[i] for i in val_idx]
        val_items = val_items[: d.val_max_images]
        self.train_cache = ImageCache.from_paths(train_items, d.max_side, min_side)
        degrade = self.degradation_factory(cfg.task, self._deg_params(cfg.degradation.params, "train"))
        self.batches = BatchMaker(
            self.train_cache,
            degrade,
            d.patch_size,
            d.batch_size,
            cfg.train.seed,
            scale=cfg.model.scale,
            rescale=tuple(d.rescale),
            flips=d.flips,
            rot90=d.rot90,
            grey=cfg.model.in_chans == 1,
            rank=self.rank,
            world_size=self.world_size,
        )
        self._build_val(val_items)

    def _deg_params(self, params: dict[str, Any] | None, kind: str) -> dict[str, Any]:
        """The recipe's params (or irx.degrade's defaults); for a sized task the factor is model.scale."""
        cfg = self.cfg
        given = dict(params) if params else {}
        scale = given.get("scale", cfg.model.scale)
        sized = get_task(cfg.task).has_scale
        if sized and scale != cfg.model.scale:
            raise UsageError(f"degradation scale {scale} differs from model.scale {cfg.model.scale}")
        merged = given or default_params(cfg.task, kind)
        if sized:
            merged["scale"] = cfg.model.scale
        return merged

    def _build_val(self, items: list[tuple[Path, float]]) -> None:
        """Fixed degraded/clean pairs: central crops, degraded once with a fixed seed."""
        cfg, d = self.cfg, self.cfg.data
        self.val_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        if not items or not self.is_main:
            return
        degrade = self.degradation_factory(cfg.task, self._deg_params(cfg.degradation.val_params, "eval"))
        cache = ImageCache.from_paths(items, d.max_side)
        multiple = 8 * cfg.model.scale
        for i, image in enumerate(cache.images):
            clean = center_crop(image, d.val_crop, multiple).astype(np.float32) / 255.0
            if min(clean.shape[:2]) < multiple:
                continue
            if cfg.model.in_chans == 1:
                clean = (clean @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
            rng = np.random.default_rng([cfg.train.seed & 0xFFFFFFFF, 2**40, i])
            degraded = np.clip(np.asarray(degrade(clean, rng), dtype=np.float32), 0, 1)
            if degraded.ndim == 2:
                degraded = degraded[..., None]
            self.val_pairs.append((degraded, clean))

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        return {
            "format": "irx-train-1",
            "step": self.step,
            "model": self.raw_model.state_dict(),
            "ema": self.ema.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "elapsed": self.elapsed,
            "last_val_psnr": self.last_val,
            "best_val_psnr": self.best_val,
            "input_val_psnr": self.input_val,
            "config": self.cfg.to_dict(),
        }

    def save(self) -> None:
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.state(), self.ckpt_path)

    def restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        old = ckpt.get("config", {}).get("model", {})
        new = self.cfg.to_dict()["model"]
        if old and old != new:
            raise UsageError(f"checkpoint {path} was trained with model {old}, the config asks for {new}; "
                             "use another output.dir or delete the checkpoint")
        try:
            self.raw_model.load_state_dict(ckpt["model"])
            self.ema.module.load_state_dict(ckpt["ema"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (KeyError, RuntimeError) as exc:
            raise UsageError(f"checkpoint {path} does not fit this model: {exc}") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        # The lambda's total may have changed (--iterations); the lambda itself is not saved.
        t = self.cfg.train
        self.scheduler.lr_lambdas = [lambda s: lr_at(s, t.lr, t.min_lr, t.warmup, t.iterations) / t.lr]
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        self.step = int(ckpt["step"])
        self.loss_sum = float(ckpt["loss_sum"])
        self.loss_count = int(ckpt["loss_count"])
        self.elapsed = float(ckpt["elapsed"])
        self.last_val = ckpt.get("last_val_psnr")
        self.best_val = ckpt.get("best_val_psnr")
        self.input_val = ckpt.get("input_val_psnr")
        self.history = [row for row in read_log(self.out_dir / LOG_NAME) if row["step"] <= self.step]
        if self.is_main:
            write_log(self.out_dir / LOG_NAME, self.history)

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean PSNR (RGB, uint8-quantised) of the EMA model on the held-out crops."""
        if not self.val_pairs:
            return None
        from irx.metrics import psnr

        model = self.ema.module
        model.eval()
        scores, inputs = [], []
        border = self.cfg.model.scale if self.cfg.model.scale > 1 else 0
        for degraded, clean in self.val_pairs:
            x = to_tensor([degraded]).to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                y = model(x)
            out = y.float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
            out_u8 = np.round(out * 255.0).astype(np.uint8)
            clean_u8 = np.round(clean * 255.0).astype(np.uint8)
            scores.append(float(psnr(out_u8, clean_u8, crop_border=border)))
            if degraded.shape == clean.shape:
                inputs.append(float(psnr(np.round(degraded * 255.0).astype(np.uint8), clean_u8)))
        if inputs and self.input_val is None:
            self.input_val = float(np.mean(inputs))
        return float(np.mean(scores))

    # ------------------------------------------------------------------ the loop

    def _batches(self, start: int, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        workers = self.cfg.data.num_workers
        if workers == 0:
            for step in range(start, stop):
                yield self.batches[step]
            return
        loader = torch.utils.data.DataLoader(
            self.batches, batch_size=None, sampler=range(start, stop), num_workers=workers, prefetch_factor=4
        )
        yield from loader

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor) -> float:
        degraded = degraded.to(self.device, non_blocking=True)
        clean = clean.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out = self.model(degraded)
            loss = self.criterion(out.float(), clean)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.raw_model, step=self.scheduler.last_epoch)
        value = loss.detach()
        if self.world_size > 1:
            dist.all_reduce(value)
            value = value / self.world_size
        return float(value)

    def fit(self, resume: bool = False, stop_at: int | None = None) -> TrainResult:
        """Train to cfg.train.iterations, resuming from latest.pt when `resume`.

        `stop_at` interrupts the run after that step (checkpoint saved), as a crash would,
        without changing the schedule.
        """
        fit_started = time.perf_counter()  # the time limit counts data loading too
        self.build()
        if resume:
            if self.ckpt_path.is_file():
                self.restore(self.ckpt_path)
            elif self.is_main and not self.quiet:
                print(f"irx train: no checkpoint in {self.out_dir}; starting from step 0", file=sys.stderr)
        elif self.ckpt_path.is_file():
            raise UsageError(f"{self.ckpt_path} exists; use --resume to continue it or choose another output.dir")
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if not resume or not self.history:
                write_log(self.out_dir / LOG_NAME, self.history)
        t = self.cfg.train
        total = t.iterations
        stop = total if stop_at is None else min(total, stop_at)
        budget = TimeBudget(t.time_limit, fit_started, self.step) if t.time_limit > 0 else None
        self.model.train()
        progress = _Progress(self, total) if self.is_main and not self.quiet else None
        last_tick = time.perf_counter()
        try:
            for degraded, clean in self._batches(self.step, stop):
                lr = self.optimizer.param_groups[0]["lr"]
                loss = self.train_step(degraded, clean)
                if not math.isfinite(loss):
                    raise UsageError(f"loss became {loss} at step {self.step + 1}; lower train.lr or set train.grad_clip")
                self.step += 1
                self.loss_sum += loss
                self.loss_count += 1
                now = time.perf_counter()
                self.elapsed += now - last_tick
                last_tick = now
                done = self.step
                if budget is not None:
                    planned = budget.observe(done, now, total)
                    if planned is not None:
                        # Every DDP rank takes rank 0's plan, so all stop at the same step.
                        planned = self._agree(planned)
                        # The scheduler's lambda reads t.iterations: the cosine now ends at `planned`.
                        total = t.iterations = planned
                        stop = min(stop, total)
                        if progress:
                            progress.set_total(total)
                        self._say(f"time limit {t.time_limit:.0f} s: {budget.rate:.2f} it/s measured, "
                                  f"planned {planned} iterations")
                    elif (self.world_size == 1 or done % t.log_every == 0) and done < stop \
                            and self._agree(int(budget.expired(now))):
                        # Checked every step; under DDP every log_every steps (a collective).
                        self.stopped_by_time = True
                        self._say(f"time limit reached at step {done} of {total}; saving and stopping early")
                final = done == total or self.stopped_by_time
                is_val = done % t.val_every == 0 or final
                if done % t.log_every == 0 or is_val:
                    val = None
                    if is_val and self.is_main:
                        val = self.validate()
                        self.model.train()
                        if val is not None:
                            self.last_val = val
                            self.best_val = val if self.best_val is None else max(self.best_val, val)
                    self._log(done, lr, val)
                    last_tick = time.perf_counter()
                if done % t.ckpt_every == 0 or done == stop or final:
                    self.save()
                    last_tick = time.perf_counter()
                if progress:
                    progress.update(loss, lr)
                if done >= stop or self.stopped_by_time:
                    break  # the loader's range may run past a planned (shorter) schedule
        finally:
            if progress:
                progress.close()
        return TrainResult(self.step, self.elapsed, self.last_val, self.ckpt_path, list(self.history),
                           stopped_by_time=self.stopped_by_time)

    def _agree(self, value: int) -> int:
        """Rank 0's `value` on every rank (the value itself without DDP)."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.broadcast(tensor, src=0)
        return int(tensor.item())

    def _say(self, message: str) -> None:
        if self.is_main and not self.quiet:
            print(f"irx train: {message}", file=sys.stderr, flush=True)

    def _log(self, step: int, lr: float, val: float | None) -> None:
        row = {
            "step": step,
            "loss": self.loss_sum / max(1, self.loss_count),
            "lr": lr,
            "val_psnr": val,
            "seconds": round(self.elapsed, 3),
        }
        self.loss_sum, self.loss_count = 0.0, 0
        self.history.append(row)
        if not self.is_main:
            return
        append_log(self.out_dir / LOG_NAME, row)
        if val is not None:
            write_plot(self.out_dir / PLOT_NAME, self.history, self.cfg.output.export_name or self.out_dir.name)
        if not self.quiet and not sys.stdout.isatty():
            # Under nohup the rich bar does not render; print a plain line instead.
            shown = f" val_psnr {val:.3f}" if val is not None else ""
            rate = step / self.elapsed if self.elapsed > 0 else 0.0
            eta = (self.cfg.train.iterations - step) / rate / 60 if rate > 0 else 0.0
            print(f"step {step}/{self.cfg.train.iterations} loss {row['loss']:.5f} lr {lr:.3g}"
                  f"{shown} {rate:.2f} it/s elapsed {self.elapsed / 60:.1f} min eta {eta:.0f} min", flush=True)


class _Progress:
    """A rich progress bar with step, loss, lr, it/s and ETA (only on a terminal)."""

    def __init__(self, trainer: Trainer, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.enabled = sys.stdout.isatty()
        self.trainer = trainer
        self.start_step = trainer.step
        self.start_time = time.perf_counter()
        if not self.enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.5f} lr {task.fields[lr]:.2e} {task.fields[rate]:.2f} it/s"
                       " val {task.fields[val]}"),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=trainer.step, loss=0.0, lr=0.0,
                                           rate=0.0, val="-")

    def update(self, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        steps = self.trainer.step - self.start_step
        rate = steps / max(1e-9, time.perf_counter() - self.start_time)
        val = f"{self.trainer.last_val:.2f} dB" if self.trainer.last_val is not None else "-"
        self.progress.update(self.task, completed=self.trainer.step, loss=loss, lr=lr, rate=rate, val=val)

    def set_total(self, total: int) -> None:
        if self.enabled:
            self.progress.update(self.task, total=total)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()


# --------------------------------------------------------------------------- CSV log and plot


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_csv_row(row))
    atomic_write_bytes(path, text.getvalue().encode(), overwrite=True)


def append_log(path: Path, row: dict[str, Any]) -> None:
    if not path.is_file():
        write_log(path, [])
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=LOG_FIELDS, lineterminator="\n").writerow(_csv_row(row))


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    # repr keeps every float digit, so a resumed log matches an uninterrupted one exactly.
    return {k: ("" if row[k] is None else repr(row[k]) if isinstance(row[k], float) else row[k]) for k in LOG_FIELDS}


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            rows.append({
                "step": int(raw["step"]),
                "loss": float(raw["loss"]),
                "lr": float(raw["lr"]),
                "val_psnr": float(raw["val_psnr"]) if raw["val_psnr"] else None,
                "seconds": float(raw["seconds"]),
            })
    return rows


def write_plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Loss and validation PSNR against step, as a PNG (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.set_yscale("log")
    vals = [r for r in rows if r["val_psnr"] is not None]
    ax2.plot([r["step"] for r in vals], [r["val_psnr"] for r in vals], marker="o", ms=3)
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation PSNR (EMA, dB)")
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=True)
