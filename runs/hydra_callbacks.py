"""Hydra callbacks (config/globals.yaml: hydra.callbacks): `CheckConfig` checks the config (`runs.checks`) before
anything exists; `ClaimRunFolder` then creates the run's or the sweep's folder; `FailedJobs` makes a sweep with failed
jobs end with a non-zero exit status.

Hydra 1.3 turns an exception raised in a callback into a warning and carries on, so a failed check ends the
process with `SystemExit`: exit status 1 and the message on stderr, without a traceback.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, NoReturn

# Private, but it is the code Hydra itself uses to expand a basic sweep: reusing it keeps both expansions equal.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, read_write

from custom_resolvers import process_rank
from runs.checks import ConfigError, check_config
from runs.folder import claim, collect_jobs, quoted

log = logging.getLogger(__name__)

BASIC_SWEEPER = f"{BasicSweeper.__module__}.{BasicSweeper.__name__}"


class CheckConfig(Callback):
    """Stops a run, or a whole sweep, on bad input before its folders, data or W&B run exist."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # e.g. experiment=sfno_vs_fno: its jobs are a sweep's. The other ranks of a sweep job's DDP run are started
        # in run mode with the job's overrides: rank 0 decides for them.
        if config.hydra.sweeper.get("params") and process_rank() == 0:
            params = " ".join(f"{key}={value}" for key, value in config.hydra.sweeper.params.items())
            stop(f"  - this config is a sweep ({params}): run it with -m, e.g. python train.py -m {overrides(config)}")
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


def overrides(config: DictConfig) -> str:
    return " ".join(config.hydra.overrides.task)


def sweep_jobs(config: DictConfig, parser: OverridesParser) -> list[list[str]]:
    """The overrides of each job of a basic sweep, expanded as `BasicSweeper.sweep` expands them."""
    params = config.hydra.sweeper.params or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    return BasicSweeper.split_arguments(parser.parse_overrides(arguments), max_batch_size=None)[0]


def exit_on_problems(config: DictConfig, overrides: list[str] | None = None) -> None:
    """Check ``config`` and stop on any problem."""
    with hydra_config(config):
        try:
            check_config(config)
        except ConfigError as error:
            stop("\n".join(f"  - {line}" for line in str(error).splitlines()), overrides)


@contextlib.contextmanager
def hydra_config(config: DictConfig) -> Iterator[None]:
    """``config``'s `hydra` node as Hydra's, so that `${hydra:...}` resolves before Hydra sets it for the job."""
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = previous


def stop(message: str, overrides: list[str] | None = None) -> NoReturn:
    job = "" if overrides is None else f" (sweep job {' '.join(overrides)})"
    raise SystemExit(f"Error in the configuration{job}; nothing was run:\n{message}")


class ClaimRunFolder(Callback):
    """Creates the folder of a run (`hydra.run.dir`) or of a sweep (`hydra.sweep.dir`) when it starts, under a name
    no other run has taken (`runs.folder.claim`), and points Hydra at it.

    The config only names the folder: resolving it creates nothing. A folder given on the command line (a resume,
    the other ranks of a DDP run, `hydra.sweep.dir=<an earlier sweep>`) is used as it is; so is every folder in
    the other ranks of a multi-process run, which are given rank 0's.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.resume is None and not _given(config, "hydra.run.dir") and process_rank() == 0:
            folder = _claim(config, "run")
            with read_write(config.hydra.run):
                config.hydra.run.dir = folder

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _given(config, "hydra.sweep.dir") or process_rank() != 0:
            return
        folder = _claim(config, "sweep")
        with read_write(config.hydra):
            config.hydra.sweep.dir = folder
            # Each job's config is composed again from these overrides: it must name the same folder.
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir={quoted(folder)}")


def _claim(config: DictConfig, kind: str) -> str:
    """Claim the folder `hydra.<kind>.dir` names; Hydra would turn an exception here into a warning and go on."""
    with hydra_config(config):
        folder = str(config.hydra[kind].dir)
    try:
        return claim(folder, reuse=config.debug)
    except OSError as error:
        stop(f"  - the {kind} folder {folder} cannot be created ({error.strerror}): choose another paths.log_dir")


def _given(config: DictConfig, key: str) -> bool:
    return any(override.split("=", 1)[0] == key for override in config.hydra.overrides.hydra)


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
