"""Hydra callbacks: `CheckConfig` checks the config (`runs.checks`) before Hydra creates the run or sweep folder;
`FailedJobs` makes a sweep with failed jobs end with a non-zero exit status.

Hydra 1.3 turns an exception raised in a callback into a warning and carries on, so a failed check ends the
process with `SystemExit`: exit status 1 and the message on stderr, without a traceback.
"""

import logging
from typing import Any, NoReturn

# Private, but it is the code Hydra itself uses to expand a basic sweep: reusing it keeps both expansions equal.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from evaluation.report import collect_jobs
from runs.checks import ConfigError, check_config

log = logging.getLogger(__name__)

BASIC_SWEEPER = f"{BasicSweeper.__module__}.{BasicSweeper.__name__}"


class CheckConfig(Callback):
    """Stops a run, or a whole sweep, on bad input before its folders, data or W&B run exist."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_problems(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check every job of a basic sweep (the cartesian product of its overrides) before the sweep folder exists.

        Other sweepers (Optuna...) choose their jobs as they go: those are checked in `on_job_start`.
        """
        if config.hydra.sweeper._target_ != BASIC_SWEEPER:
            return
        loader = GlobalHydra.instance().config_loader()
        try:
            jobs = sweep_jobs(config, OverridesParser.create(config_loader=loader))
        except HydraException as error:
            stop(str(error))
        for overrides in jobs:
            try:
                job_config = loader.load_sweep_config(config, overrides)
            except HydraException as error:  # e.g. an unknown group option in one job
                stop(str(error), overrides)
            exit_on_problems(job_config, overrides)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A job of a sweep whose jobs could not be checked up front: stop the sweep before the job trains."""
        if config.hydra.mode == RunMode.MULTIRUN and config.hydra.sweeper._target_ != BASIC_SWEEPER:
            exit_on_problems(config, list(config.hydra.overrides.task))


def sweep_jobs(config: DictConfig, parser: OverridesParser) -> list[list[str]]:
    """The overrides of each job of a basic sweep, expanded as `BasicSweeper.sweep` expands them."""
    params = config.hydra.sweeper.params or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    return BasicSweeper.split_arguments(parser.parse_overrides(arguments), max_batch_size=None)[0]


def exit_on_problems(config: DictConfig, overrides: list[str] | None = None) -> None:
    """Check ``config`` (with its `hydra` node, so that `${hydra:...}` resolves) and stop on any problem."""
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        check_config(config)
    except ConfigError as error:
        stop("\n".join(f"  - {line}" for line in str(error).splitlines()), overrides)
    finally:
        HydraConfig.instance().cfg = previous


def stop(message: str, overrides: list[str] | None = None) -> NoReturn:
    job = "" if overrides is None else f" (sweep job {' '.join(overrides)})"
    raise SystemExit(f"Error in the configuration{job}; nothing was run:\n{message}")


class FailedJobs(Callback):
    """Ends a multirun that had failed jobs with exit status 1, listing them with their errors.

    A search (Optuna...) lists its failed trials as a warning instead: a trial that diverges is an outcome of the
    search, which has found its best value all the same.

    Registered before `comparison_report` in the config: Hydra calls `on_multirun_end` in reverse order, so the
    comparison (which shows the failed jobs too) is written first.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = collect_jobs(config.hydra.sweep.dir)
        failed = [job for job in jobs if job["status"] != "completed"]
        if not failed:
            return
        lines = "\n".join(f"  - {job['job']}: {job['error']}" for job in failed)
        if config.hydra.sweeper._target_ != BASIC_SWEEPER:
            log.warning("%d of %d trials failed (see error.txt in each):\n%s", len(failed), len(jobs), lines)
            return
        raise SystemExit(f"{len(failed)} of {len(jobs)} sweep jobs failed (see error.txt in each):\n{lines}")
