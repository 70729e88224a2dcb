"""Train a neural operator on the shallow-water equations, then test its rollouts.

python train.py [model=fno] [data=64x128] [trainer=ddp] [logger=csv] [debug=True] [-m ...]   (--help lists the choices)
python train.py resume=<run folder> [training.max_epochs=N]   # continue a run from its ckpt/last.ckpt
python train.py init_from=<run folder or .ckpt> [overrides]     # a new run starting from that run's weights
"""

import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

import custom_resolvers  # noqa: F401  (registers the resolvers the configs use)
from runs.failures import run_task
from runs.resume import quote_folder_arguments

if TYPE_CHECKING:
    import lightning.pytorch as pl

log = logging.getLogger(__name__)
# What sweepers minimise: the validation rollout error each validation epoch logs (models/module.py), also the best
# checkpoint's monitor (config/callbacks/default.yaml).
VALIDATION_METRIC = "val/rollout_rel_l2"


def train(cfg: DictConfig) -> float | None:
    """Train and test as ``cfg`` says; returns the final validation rollout error (val/rollout_rel_l2, for sweepers).

    With ``cfg.resume`` set, continues that run instead (None when it had finished already).
    """
    # Imported here: a config error (checked before this runs) costs no torch or Lightning import.
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from runs.build import build_module
    from runs.distributed import trainer_settings
    from runs.start import ending, start_run

    start = start_run(cfg)  # the resume and requeue decision
    if start is None:
        return None
    cfg = start.cfg
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = build_module(cfg)
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values()]
    # Several devices: DDP whose other ranks run in this folder; SLURM: submitit's requeue, not Lightning's.
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, **trainer_settings(cfg))
    start.prepare(trainer.loggers)
    log.info("run folder: %s", cfg.output_dir)
    with ending(trainer):
        trainer.fit(model, datamodule=datamodule, ckpt_path=start.ckpt_path)
        val_error = validation_error(trainer, model, datamodule)
        trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint(trainer))  # callbacks write the report
    return val_error


def validation_error(trainer: "pl.Trainer", model: "pl.LightningModule", datamodule: "pl.LightningDataModule") -> float:
    """The last validation rollout error (the mean relative L2 over channels and leads 1 to eval.val_rollout_steps);
    a non-finite one is an error, as a sweeper must not get it as a value."""
    from runs.lightning_callbacks import NonFiniteLossError

    if VALIDATION_METRIC not in trainer.callback_metrics:  # a requeued job whose training had ended: nothing ran
        trainer.validate(model, datamodule=datamodule, verbose=False)
    val_error = float(trainer.callback_metrics[VALIDATION_METRIC])
    if not math.isfinite(val_error):
        raise NonFiniteLossError(f"Training ended with a non-finite validation error: {VALIDATION_METRIC}={val_error}")
    return val_error


def best_checkpoint(trainer: "pl.Trainer") -> str | None:
    """The monitored best checkpoint to test; None (the weights as trained) where there is none (fast_dev_run)."""
    return getattr(trainer.checkpoint_callback, "best_model_path", None) or None


@hydra.main(version_base="1.3", config_path="config", config_name="neuraloperator")
def main(cfg: DictConfig) -> float | None:
    return run_task(train, cfg)


if __name__ == "__main__":
    sys.argv = quote_folder_arguments(sys.argv)
    # Sweep jobs in other processes (submitit, local or SLURM) unpickle this project's objects from anywhere.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    main()
