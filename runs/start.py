"""How train.py starts and ends a run: the process set-up, the resume or requeue decision, and what `fit` needs."""

import contextlib
import gc
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from runs.folder import ERROR_FILE, LAST_CHECKPOINT, checkpoint_progress
from runs.resume import keep_earlier_metrics, resumed_config, wandb_run_id

log = logging.getLogger(__name__)


@dataclass
class Start:
    """What a run starts from: its config (a resumed run's own) and the checkpoint `fit` goes on from (None: anew)."""

    cfg: DictConfig
    ckpt_path: Path | None = None
    step: int = 0  # the optimizer steps of ckpt_path

    def prepare(self, loggers: list) -> None:
        """A new run sends its resolved config to every logger; a resumed one keeps the rows of metrics.csv that its
        checkpoint has seen (the W&B run has its config already)."""
        from lightning.pytorch.loggers import CSVLogger

        for logger in loggers:
            if self.ckpt_path is None:
                logger.log_hyperparams(OmegaConf.to_container(self.cfg, resolve=True))
            elif isinstance(logger, CSVLogger):
                keep_earlier_metrics(logger, self.step)


def start_run(cfg: DictConfig) -> Start | None:
    """The run ``cfg`` describes, resumed where it has a checkpoint; None when it has nothing left to train.

    `resume=<run folder>` continues that run with its saved config; a job that starts in a folder holding
    ckpt/last.ckpt was requeued (a SLURM time-out or pre-emption, through submitit) and goes on from there as a
    resume would, also to run a test stage it had not reached.
    """
    run_dir = Path(cfg.output_dir)
    if cfg.resume:
        cfg = resumed_config(cfg)
    # A run saved before the key existed trained at PyTorch's default, which None leaves in place.
    prepare_process(OmegaConf.select(cfg, "float32_matmul_precision"))
    suggest_gpu_preset(cfg)
    # Resolve everything now: a missing value or an impossible batch split fails before any work.
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if OmegaConf.select(cfg, "logger.wandb") is not None:
        with open_dict(cfg):
            cfg.logger.wandb.id = wandb_run_id(run_dir)  # the same W&B run when the run goes on
    last = run_dir / LAST_CHECKPOINT
    requeued = not cfg.resume and last.is_file()
    if not (cfg.resume or requeued):
        return Start(cfg)
    epochs_done, step = checkpoint_progress(last)
    max_epochs = cfg.trainer.max_epochs
    if epochs_done >= max_epochs and not requeued:
        log.info("nothing to train: the run finished its %d epochs already (%s)", epochs_done, run_dir)
        return None
    how = "requeued job found its checkpoint: " if requeued else ""
    log.info("%sresuming %s at epoch %d, step %d, up to epoch %d", how, run_dir, epochs_done, step, max_epochs)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure stays in train.log
    return Start(cfg, last, step)


def prepare_process(float32_matmul_precision: str | None = None) -> None:
    """Process-wide settings a training process needs, with the config's `float32_matmul_precision` (None: PyTorch's
    default or what the process set); imports torch."""
    import torch

    # The imported modules' millions of objects live until the process ends: keeping them out of the garbage
    # collector's scans saves seconds, most of them in the collection at exit. Once per process: a later job of
    # an in-process sweep would freeze what earlier jobs left for collection.
    if not gc.get_freeze_count():
        gc.freeze()
    # Weights drift into subnormal floats while training; on CPUs these make each step 10-40x slower.
    torch.set_flush_denormal(True)
    # highest: float32 matrix products in float32; high or medium: in TensorFloat32 on GPUs that have it (the
    # spectral transforms stay in float32: models/precision.py). Convolutions follow torch.backends.cudnn.allow_tf32.
    if float32_matmul_precision is not None:
        torch.set_float32_matmul_precision(float32_matmul_precision)


def suggest_gpu_preset(cfg: DictConfig) -> None:
    """On a machine with a GPU, a run that left the accelerator to Lightning trains the default study, which is sized
    for a 2-core CPU (batches of 16 use a fraction of a GPU): say, among the first lines of the run, how to fill it."""
    import torch

    if OmegaConf.select(cfg, "trainer.accelerator") == "auto" and torch.cuda.is_available():
        log.info(
            "a GPU is available, and batch_size=%s keeps most of it idle: `python train.py experiment=gpu` trains "
            "the default study sized for one GPU (config/experiment/gpu.yaml: larger batches, learning rate scaled)",
            cfg.batch_size,
        )


@contextlib.contextmanager
def ending(trainer: object) -> Iterator[None]:
    """Ends what the run started, also when it fails: its W&B run (marked failed by an exception) and the other
    ranks of a multi-process run."""
    from runs.distributed import release

    exit_code = 1
    try:
        yield
        exit_code = 0
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:  # a multirun's next job must not log into this run
            wandb.finish(exit_code=exit_code)
        release(trainer)  # the other ranks of a multi-process run end with this one
