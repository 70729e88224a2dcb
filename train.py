"""Train a neural operator on the shallow-water equations, then test its rollouts.

python train.py [--config-name=neuraloperator] [model=fno] [data=64x128] [debug=True] [-m ...]
python train.py resume=<run folder> [training.max_epochs=N]   # continue a run from its ckpt/last.ckpt
"""

import gc
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import custom_resolvers  # noqa: F401  (registers the resolvers the configs use)
from runs.failures import run_task
from runs.resume import quote_resume_argument

log = logging.getLogger(__name__)


def clear_debug_folder(output_dir: str) -> None:
    """Remove what the previous debug run left, keeping what Hydra just wrote for this one."""
    for entry in Path(output_dir).iterdir():
        if entry.name in (".hydra", "train.log"):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def train(cfg: DictConfig) -> float | None:
    """Train and test as ``cfg`` says; returns the final validation relative L2 (for sweepers).

    With ``cfg.resume`` set, continues that run instead (None when it had finished already).
    """
    # Imported here: a config error (checked before this runs) costs no torch or Lightning import.
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import CSVLogger

    from evaluation.callbacks import ValidationMaps, log_images
    from evaluation.report import ERROR_FILE
    from evaluation.run_report import write_run_report
    from runs.build import build_module, count_parameters
    from runs.distributed import release, trainer_settings
    from runs.resume import checkpoint_progress, keep_earlier_metrics, resumed_config, started_with, wandb_run_id
    from runs.training import NonFiniteLossError, RNGState, StopOnNonFinite

    # The imported modules' millions of objects live until the process ends: keeping them out of the garbage
    # collector's scans saves seconds, most of them in the collection at exit. Once per process: a later job of
    # an in-process sweep would freeze what earlier jobs left for collection.
    if not gc.get_freeze_count():
        gc.freeze()
    # Weights drift into subnormal floats while training; on CPUs these make each step 10-40x slower.
    torch.set_flush_denormal(True)
    if cfg.resume:
        cfg = resumed_config(cfg)
    # Resolve everything now: a missing value or an impossible batch split fails before any work.
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    last_checkpoint = instantiate(cfg.last_checkpoint)
    # A job that starts in a folder holding a checkpoint was requeued (a SLURM time-out or pre-emption, through
    # submitit): it goes on from there, as resume=<its folder> would.
    requeued = not cfg.resume and not cfg.debug and last_checkpoint.path.is_file()
    resuming = bool(cfg.resume) or requeued
    if resuming:
        epochs_done, step = checkpoint_progress(last_checkpoint.path)
        max_epochs = (cfg.debug_trainer if cfg.debug else cfg.trainer).max_epochs
        if epochs_done >= max_epochs and not requeued:  # a requeued job may still lack its test stage
            log.info("nothing to train: the run finished its %d epochs already (%s)", epochs_done, cfg.output_dir)
            return None
        how = "requeued job found its checkpoint: " if requeued else ""
        log.info(
            "%sresuming %s at epoch %d, step %d, up to epoch %d", how, cfg.output_dir, epochs_done, step, max_epochs
        )
        (Path(cfg.output_dir) / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure stays in train.log
    elif cfg.debug and custom_resolvers.process_rank() == 0:
        clear_debug_folder(cfg.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = build_module(cfg)
    loggers = [CSVLogger(save_dir=cfg.output_dir, name="", version="")]
    if resuming:
        keep_earlier_metrics(loggers[0], step)
    if not cfg.debug:
        loggers.append(instantiate(cfg.wandb, id=wandb_run_id(Path(cfg.output_dir))))
        if not resuming:  # a resumed W&B run has its config
            loggers[-1].log_hyperparams(resolved)
    checkpoint = instantiate(cfg.checkpoint)
    callbacks = [
        StopOnNonFinite(),
        RNGState(),
        checkpoint,
        last_checkpoint,
        ValidationMaps(cfg.output_dir, cfg.eval.plot_every_n_epochs),
    ]
    debug_settings = cfg.debug_trainer if cfg.debug else {}
    # Several devices: DDP whose other ranks run in this folder; SLURM: submitit's requeue, not Lightning's.
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks, **debug_settings, **trainer_settings(cfg))
    log.info("run folder: %s", cfg.output_dir)
    wandb_exit_code = 1
    try:
        started = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=last_checkpoint.path if resuming else None)
        train_time = time.perf_counter() - started
        if "val/rel_l2" not in trainer.callback_metrics:  # a requeued job whose training had ended: nothing ran
            trainer.validate(model, datamodule=datamodule, verbose=False)
        val_error = float(trainer.callback_metrics["val/rel_l2"])
        if not math.isfinite(val_error):  # a sweeper must not get it as a value
            raise NonFiniteLossError(f"Training ended with a non-finite validation error: val/rel_l2={val_error}")
        trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint.best_model_path)
        if trainer.is_global_zero:
            launch = started_with(cfg)
            meta = {
                "model": launch.runtime.choices.model,
                "data": f"{cfg.data.nlat}x{cfg.data.nlon}",
                "parameters": count_parameters(model.net),
                "train_time_s": round(train_time, 1),
                "overrides": list(launch.overrides.task),
            }
            plots = write_run_report(model.test_results, model.channels, meta, cfg.output_dir)
            log_images(trainer, {f"test/{name}": path for name, path in plots.items()})
            log.info("test metrics and plots written to %s", cfg.output_dir)
        wandb_exit_code = 0
    finally:
        if not cfg.debug:
            loggers[-1].experiment.finish(exit_code=wandb_exit_code)
        release(trainer)  # the other ranks of a multi-process run end with this one
    return val_error


@hydra.main(version_base="1.3", config_path="config", config_name="neuraloperator")
def main(cfg: DictConfig) -> float | None:
    return run_task(train, cfg)


if __name__ == "__main__":
    sys.argv = quote_resume_argument(sys.argv)
    # Sweep jobs in other processes (submitit, local or SLURM) unpickle this project's objects from anywhere.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    main()
