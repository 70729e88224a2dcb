"""What the benchmarks share: their config, a Trainer that only trains, timers that wait for the GPU, and the
machine each figure was measured on."""

import os
import platform
import statistics
import time
from collections.abc import Callable
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


def machine() -> dict:
    """The machine a benchmark ran on, as every benchmark's JSON names it: the CPU model (with its family and model
    numbers, since a virtual machine's model name can be as bare as "AMD EPYC") and the flags that decide its
    matrix-product speed (AVX2, AVX-512, AMX), its cores, the threads torch uses, torch's version, the GPU."""
    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        cpu, flags = fields.get("model name", cpu), set(fields.get("flags", "").split())
        if "cpu family" in fields and "model" in fields:
            cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    return {
        "cpu": cpu,
        "cpu_flags": {flag: flag in flags for flag in ("avx2", "avx512f", "amx_tile")},
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def gemm_gflops(size: int = 1024, repeats: int = 20) -> float:
    """The float32 rate of a square matrix product on this machine with the current threads (GPU if any), in
    GFLOP/s: the median of ``repeats`` products after two untimed ones."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / median_seconds(lambda: a @ b, repeats, warmup=2) / 1e9


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The median wall time of ``repeats`` calls after ``warmup`` untimed ones, queued GPU work included."""
    times = []
    for index in range(warmup + repeats):
        synchronize()
        started = time.perf_counter()
        call()
        synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


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
