"""Continuing a run in its own folder: `python train.py resume=<run folder>`.

The run goes on from its ckpt/last.ckpt with the config it was started with (`.hydra/config.yaml`), in the same
W&B run (`wandb_id.txt`); only `training.max_epochs` may change, to train longer.
"""

import csv
import re
import secrets
import string
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from runs.folder import WANDB_ID_FILE, saved_config
from runs.overrides import override_key

if TYPE_CHECKING:
    from lightning.pytorch.loggers import CSVLogger


def quote_resume_argument(argv: list[str]) -> list[str]:
    """``argv`` with the folder of `resume=<folder>` quoted for Hydra.

    Run folder names hold `=` and `,` (their overrides), which Hydra's override grammar reads as syntax; quoted,
    a folder can be passed as the shell completes it.
    """
    quoted = []
    for argument in argv:
        value = argument.removeprefix("resume=")
        if value != argument and re.search(r"[=,\s]", value) and not value.startswith(("'", '"')):
            argument = f"resume='{value}'"
        quoted.append(argument)
    return quoted


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The config the run in ``cfg.resume`` was started with, with ``training.max_epochs`` if given now."""
    saved = saved_config(Path(cfg.resume))
    if "training.max_epochs" in map(override_key, HydraConfig.get().overrides.task):
        saved.training.max_epochs = cfg.training.max_epochs
    saved.resume = cfg.resume
    if OmegaConf.select(saved, "logger.wandb") is not None:
        # Its saved name and group hold this command's time and mode: without them W&B keeps the run's own.
        saved.logger.wandb.name = saved.logger.wandb.group = None
    return saved


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run of this run folder: the id saved in it (a resume), else a new one, saved for later resumes."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # as W&B makes them
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # the other ranks of a multi-GPU run log nothing to W&B
        path.write_text(f"{run_id}\n")
    return run_id


def keep_earlier_metrics(logger: "CSVLogger", step: int) -> None:
    """Carry the rows of metrics.csv logged before global step ``step`` into ``logger``.

    Lightning's CSV logger deletes the metrics.csv it finds; the rows after the checkpoint are dropped, as the
    resumed run logs those steps again. A row's `step` is the global step before its batch's optimizer step.
    """
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if int(row["step"]) < step]
    logger.experiment.metrics = rows
