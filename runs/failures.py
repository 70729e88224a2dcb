"""A failed run or sweep job leaves its error in its folder (error.txt), and a sweep goes on past it."""

import logging
import math
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evaluation.report import ERROR_FILE

log = logging.getLogger(__name__)


def run_task(task: Callable[[DictConfig], float | None], cfg: DictConfig) -> float | None:
    """``task(cfg)``; on an exception, write error.txt (the message, then the traceback) into the run folder.

    A single run then ends with exit status 1. A sweep job returns NaN instead: a job's exception would end the
    whole sweep in Hydra's sweeper (before the comparison report, and with the jobs of later batches not run).
    `runs.callbacks.FailedJobs` lists the failed jobs and exits non-zero when the sweep ends; NaN also marks the
    trial failed for optimising sweepers.
    """
    try:
        return task(cfg)
    except Exception as error:
        hydra_cfg = HydraConfig.get()
        path = Path(hydra_cfg.runtime.output_dir) / ERROR_FILE
        message = f"{type(error).__name__}: {error}"
        path.write_text(f"{message}\n\n{traceback.format_exc()}")
        log.exception("Run failed: %s (also in %s)", message.splitlines()[0], path)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return math.nan
        raise SystemExit(f"Run failed: {message.splitlines()[0]}\nError and traceback: {path}") from error
