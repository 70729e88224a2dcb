"""Test an existing run without training: `python evaluate.py <run folder> [--checkpoint last]`.

Loads the model from its checkpoint alone and the data from the run's saved config, and writes
test_metrics.json and plots/ into the run folder, as the test stage of train.py does.
"""

import argparse
import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import custom_resolvers
from evaluation.callbacks import log_images, run_meta
from evaluation.run_report import write_run_report
from models import NeuralOperatorModule
from runs.folder import SAVED_CONFIG, DamagedFileError, find_checkpoint, saved_config, started_with

log = logging.getLogger(__name__)


def evaluate(run_dir: Path, which: str) -> dict:
    torch.set_flush_denormal(True)
    train_cfg = saved_config(run_dir)
    train_cfg.output_dir = str(run_dir)  # the saved value is a ${hydra:...} interpolation
    checkpoint = find_checkpoint(run_dir, which)
    model = NeuralOperatorModule.load_from_checkpoint(checkpoint)
    datamodule = instantiate(train_cfg.data)
    logger = wandb_logger(train_cfg, run_dir)
    trainer = pl.Trainer(
        logger=logger, enable_checkpointing=False, accelerator=train_cfg.trainer.accelerator, devices=1
    )
    trainer.test(model, datamodule=datamodule)
    meta = run_meta(run_dir, model, datamodule) | {"checkpoint": str(checkpoint)}
    plots = write_run_report(model.test_results, model.channels, meta, run_dir)
    log_images(trainer, {f"test/{name}": path for name, path in plots.items()})
    if logger:
        logger.experiment.finish()
    log.info("test metrics and plots of %s written to %s", checkpoint.name, run_dir)
    return model.test_results


def wandb_logger(train_cfg: DictConfig, run_dir: Path) -> "pl.loggers.WandbLogger | bool":
    """A W&B run of its own (job_type evaluate) beside the training run's, in the same group; False without W&B."""
    node = OmegaConf.select(train_cfg, "logger.wandb")
    if node is None:
        return False
    group = custom_resolvers.sweep_name(started_with(run_dir).mode, str(run_dir))
    return instantiate(node, id=None, name=f"{run_dir.name}-evaluate", group=group, job_type="evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder (also accepted as run=<folder>)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a path to a .ckpt file")
    args = parser.parse_args()
    run_dir = Path(args.run.removeprefix("run=")).resolve()
    if not (run_dir / SAVED_CONFIG).is_file():
        parser.error(f"{args.run} is not a run folder: it has no {SAVED_CONFIG}")
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "evaluate.log", mode="w")],
    )
    try:
        evaluate(run_dir, args.checkpoint)
    except (DamagedFileError, FileNotFoundError) as error:
        parser.exit(1, f"evaluate.py: {error}\n")


if __name__ == "__main__":
    main()
