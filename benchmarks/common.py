"""What the benchmarks share: their config, a Trainer that only trains, and timers that wait for the GPU."""

import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch import Callback, Trainer
from omegaconf import DictConfig

import custom_resolvers  # noqa: F401  (registers the resolvers the configs use)
from data.generate import DataSpec

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "config")


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `python train.py <overrides>` would train with (without Hydra's run-time node)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("neuraloperator", overrides=overrides)


def data_spec(overrides: list[str]) -> DataSpec:
    """The data that `python train.py <overrides>` generates (building the data module generates nothing)."""
    return instantiate(compose_config(overrides).data).spec


def synchronize() -> None:
    """Wait for queued GPU work, so that a wall-clock reading includes it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(Callback):
    """Wall time of the first training epoch, and of its batches after the first ``warmup`` (CUDA plans, caches)."""

    def __init__(self, warmup: int = 0) -> None:
        self.warmup = warmup
        self.elapsed = self.steady = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize()
        self.started = self.steady_started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            synchronize()
            self.steady_started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop()

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()  # max_steps can end training within the epoch

    def _stop(self) -> None:
        if self.elapsed is None:
            synchronize()
            now = time.perf_counter()
            self.elapsed, self.steady = now - self.started, now - self.steady_started


def timing_trainer(timer: Callback, **settings) -> Trainer:
    """A Trainer (on the GPU when there is one) without validation, logging, checkpoints or progress output, so
    only training is timed."""
    return Trainer(
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        **settings,
    )
