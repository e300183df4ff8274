"""Training irx's models: recipes (TOML), a resumable trainer, and export to the bundled zoo.

    from irx.train import load_config, train
    result = train(load_config("denoise"), resume=True)
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from irx.train.config import RECIPES_DIR, RunConfig, load_config
from irx.train.export import export_checkpoint
from irx.train.trainer import EMA, Trainer, TrainResult, lr_at

__all__ = [
    "EMA",
    "RECIPES_DIR",
    "RunConfig",
    "TrainResult",
    "Trainer",
    "export_checkpoint",
    "load_config",
    "lr_at",
    "train",
]


def train(cfg: RunConfig, resume: bool = False, device: str = "auto", export: bool = True,
          quiet: bool = False) -> TrainResult:
    """Train a recipe to its iteration count, then (on the main rank) export the EMA weights."""
    trainer = Trainer(cfg, device=device, quiet=quiet)
    result = trainer.fit(resume=resume)
    if export and trainer.is_main:
        result.exported = export_checkpoint(cfg, Path(result.checkpoint))
    if dist.is_initialized():  # under torchrun: leave together, after rank 0 has exported
        dist.barrier()
        dist.destroy_process_group()
    return result
