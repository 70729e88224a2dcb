"""Test an existing run without training: `python evaluate.py <run folder> [--checkpoint last]`.

Loads the model from its checkpoint alone and the data from the run's saved config, and writes
test_metrics.json and plots/ into the run folder, as the test stage of train.py does.
"""

import argparse
import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

import custom_resolvers  # noqa: F401  (the saved config uses the resolvers)
from evaluation.run_report import write_run_report
from models import NeuralOperatorModule
from runs.build import count_parameters

log = logging.getLogger(__name__)


def find_checkpoint(run_dir: Path, which: str) -> Path:
    if which == "last":
        path = run_dir / "ckpt" / "last.ckpt"
    elif which == "best":
        candidates = sorted((run_dir / "ckpt").glob("best-*.ckpt"))
        path = candidates[-1] if candidates else run_dir / "ckpt" / "missing-best.ckpt"
    else:
        path = Path(which)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: pass checkpoint=best, checkpoint=last or a .ckpt path")
    return path


def evaluate(run_dir: Path, which: str) -> dict:
    torch.set_flush_denormal(True)
    train_cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    train_cfg.output_dir = str(run_dir)  # the saved value is a ${hydra:...} interpolation
    choices = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["choices"]
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    checkpoint = find_checkpoint(run_dir, which)
    model = NeuralOperatorModule.load_from_checkpoint(checkpoint)
    datamodule = instantiate(train_cfg.data)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator=train_cfg.trainer.accelerator, devices=1)
    trainer.test(model, datamodule=datamodule)
    meta = {
        "model": choices["model"],
        "data": f"{train_cfg.data.nlat}x{train_cfg.data.nlon}",
        "parameters": count_parameters(model.net),
        "checkpoint": str(checkpoint),
        "overrides": overrides,
    }
    write_run_report(model.test_results, model.channels, meta, run_dir)
    log.info("test metrics and plots of %s written to %s", checkpoint.name, run_dir)
    return model.test_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder (also accepted as run=<folder>)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a path to a .ckpt file")
    args = parser.parse_args()
    run_dir = Path(args.run.removeprefix("run=")).resolve()
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        parser.error(f"{args.run} is not a run folder: it has no .hydra/config.yaml")
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "evaluate.log", mode="w")],
    )
    evaluate(run_dir, args.checkpoint)


if __name__ == "__main__":
    main()
