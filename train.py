"""Train a neural operator on the shallow-water equations, then test its rollouts.

python train.py [--config-name=neuraloperator] [model=fno] [data=64x128] [debug=True] [-m ...]
"""

import logging
import shutil
import time
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

import custom_resolvers  # noqa: F401  (registers the resolvers the configs use)
from evaluation.callbacks import ValidationMaps, log_images
from evaluation.run_report import write_run_report
from runs.build import build_module, count_parameters

log = logging.getLogger(__name__)


def clear_debug_folder(output_dir: str) -> None:
    """Remove what the previous debug run left, keeping what Hydra just wrote for this one."""
    for entry in Path(output_dir).iterdir():
        if entry.name in (".hydra", "train.log"):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def train(cfg: DictConfig) -> float:
    """Train and test as ``cfg`` says; returns the final validation relative L2 (for sweepers)."""
    # Weights drift into subnormal floats while training; on CPUs these make each step 10-40x slower.
    torch.set_flush_denormal(True)
    # Resolve everything now: a missing value or an impossible batch split fails before any work.
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if cfg.debug:
        clear_debug_folder(cfg.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = build_module(cfg)
    loggers = [CSVLogger(save_dir=cfg.output_dir, name="", version="")]
    if not cfg.debug:
        loggers.append(instantiate(cfg.wandb))
        loggers[-1].log_hyperparams(resolved)
    callbacks = [instantiate(cfg.checkpoint), ValidationMaps(cfg.output_dir, cfg.eval.plot_every_n_epochs)]
    debug_settings = cfg.debug_trainer if cfg.debug else {}
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks, **debug_settings)
    log.info("run folder: %s", cfg.output_dir)
    try:
        started = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        train_time = time.perf_counter() - started
        val_error = float(trainer.callback_metrics["val/rel_l2"])
        trainer.test(model, datamodule=datamodule, ckpt_path="best")
        if trainer.is_global_zero:
            meta = {
                "model": hydra.core.hydra_config.HydraConfig.get().runtime.choices.model,
                "data": f"{cfg.data.nlat}x{cfg.data.nlon}",
                "parameters": count_parameters(model.net),
                "train_time_s": round(train_time, 1),
                "overrides": list(hydra.core.hydra_config.HydraConfig.get().overrides.task),
            }
            plots = write_run_report(model.test_results, model.channels, meta, cfg.output_dir)
            log_images(trainer, {f"test/{name}": path for name, path in plots.items()})
            log.info("test metrics and plots written to %s", cfg.output_dir)
    finally:
        if not cfg.debug:
            loggers[-1].experiment.finish()
    return val_error


@hydra.main(version_base="1.3", config_path="config", config_name="neuraloperator")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
