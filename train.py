"""Train a neural operator on the shallow-water equations.

python train.py [--config-name=neuraloperator] [model=fno] [data=64x128] [debug=True] [-m ...]
"""

import logging
import shutil
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

import custom_resolvers  # noqa: F401  (registers the resolvers the configs use)
from models import NeuralOperatorModule

log = logging.getLogger(__name__)


def clear_debug_folder(output_dir: str) -> None:
    """Remove what the previous debug run left, keeping what Hydra just wrote for this one."""
    for entry in Path(output_dir).iterdir():
        if entry.name in (".hydra", "train.log"):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def train(cfg: DictConfig) -> float:
    """Train as ``cfg`` says; returns the final validation relative L2 (for sweepers)."""
    # Weights drift into subnormal floats while training; on CPUs these make each step 10-40x slower.
    torch.set_flush_denormal(True)
    # Resolve everything now: a missing value or an impossible batch split fails before any work.
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if cfg.debug:
        clear_debug_folder(cfg.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = NeuralOperatorModule(
        net=instantiate(cfg.model.net),
        optimizer=instantiate(cfg.training.optimizer),
        scheduler=instantiate(cfg.training.scheduler),
        nlat=cfg.data.nlat,
        nlon=cfg.data.nlon,
        grid=cfg.data.grid,
        residual=cfg.model.residual,
    )
    loggers = [CSVLogger(save_dir=cfg.output_dir, name="", version="")]
    if not cfg.debug:
        loggers.append(instantiate(cfg.wandb))
        loggers[-1].log_hyperparams(resolved)
    debug_settings = cfg.debug_trainer if cfg.debug else {}
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=[instantiate(cfg.checkpoint)], **debug_settings)
    log.info("run folder: %s", cfg.output_dir)
    try:
        trainer.fit(model, datamodule=datamodule)
    finally:
        if not cfg.debug:
            loggers[-1].experiment.finish()
    return float(trainer.callback_metrics["val/rel_l2"])


@hydra.main(version_base="1.3", config_path="config", config_name="neuraloperator")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
