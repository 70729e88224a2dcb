"""A failed run or sweep job leaves its error in its folder (error.txt), and a sweep goes on past it."""

import logging
import math
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from custom_resolvers import process_rank
from runs.folder import ERROR_FILE
from runs.hydra_callbacks import BASIC_SWEEPER

log = logging.getLogger(__name__)

# Exit status of a rank > 0 whose run failed and was reported: rank 0 reports the run (runs.distributed).
RANK_FAILED_EXIT_CODE = 3


def run_task(task: Callable[[DictConfig], float | None], cfg: DictConfig) -> float | None:
    """``task(cfg)``; on an exception, write error.txt (the message, then the traceback) into the run folder.

    A single run then ends with exit status 1. A job of a basic sweep returns NaN instead: a job's exception would
    end the whole sweep in Hydra's basic sweeper (before the comparison report, and with the jobs of later batches
    not run); `runs.hydra_callbacks.FailedJobs` lists the failed jobs and exits non-zero when the sweep ends. A job of
    an optimising sweeper (Optuna) fails with the exception, which the sweeper records as a failed trial (optuna 2.10
    refuses a NaN value: `study.tell` raises, and the sweeper with it).

    Ranks other than 0 of a multi-process run write error_rank<N>.txt and end with
    `runs.distributed.RANK_FAILED_EXIT_CODE`: rank 0 reports the run (it fails on the same error, or on the
    collective the failed rank left).
    """
    try:
        return task(cfg)
    except Exception as error:
        hydra_cfg = HydraConfig.get()
        rank = process_rank()
        name = ERROR_FILE if rank == 0 else f"{Path(ERROR_FILE).stem}_rank{rank}{Path(ERROR_FILE).suffix}"
        path = Path(hydra_cfg.runtime.output_dir) / name
        message = f"{type(error).__name__}: {error}"
        path.write_text(f"{message}\n\n{traceback.format_exc()}")
        log.exception("Run failed: %s (also in %s)", message.splitlines()[0], path)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            if hydra_cfg.sweeper._target_ == BASIC_SWEEPER:
                return math.nan
            raise
        if rank != 0:
            raise SystemExit(RANK_FAILED_EXIT_CODE) from error
        raise SystemExit(f"Run failed: {message.splitlines()[0]}\nError and traceback: {path}") from error
