"""Checks of a composed config that stop bad input before any folder, file, data or W&B run exists.

`check_config` reads only the keys each check needs, so that one problem does not hide the others. Each module
here holds one kind of check: values (types, ranges, choices), hyperdiffusion (the reference grid and the initial
band), windows (training windows and validation rollouts against the trajectories), batches, devices, model,
folders, resume; the check of `init_from=` lives with the loading it checks, in runs/init_from.py.
"""

from collections.abc import Callable, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runs.checks.batches import check_batches
from runs.checks.devices import check_data_device
from runs.checks.folders import check_folders
from runs.checks.hyperdiffusion import check_hyperdiffusion
from runs.checks.model import check_model
from runs.checks.resume import check_resume
from runs.checks.values import check_choices, check_sizes, check_switches, missing_keys
from runs.checks.windows import check_windows
from runs.init_from import check_init_from


class ConfigError(ValueError):
    """A config that cannot work; each line of the message names a key and how to fix it."""


CHECKS: tuple[Callable[[DictConfig], Iterator[str]], ...] = (
    check_sizes,
    check_windows,
    check_switches,
    check_choices,
    check_hyperdiffusion,
    check_batches,
    check_data_device,
    check_model,
    check_folders,
    check_resume,
    check_init_from,
)


# What an evaluation of a trained run (evaluate.py) can get wrong with its overrides: training batches, the run's
# folders, resume and starting weights are not its concern.
EVALUATION_CHECKS: tuple[Callable[[DictConfig], Iterator[str]], ...] = (
    check_sizes,
    check_windows,
    check_switches,
    check_choices,
    check_hyperdiffusion,
    check_data_device,
)


def check_config(cfg: DictConfig, checks: tuple[Callable[[DictConfig], Iterator[str]], ...] = CHECKS) -> None:
    """Raise `ConfigError` listing every problem of ``cfg`` (the task config, with or without its `hydra` node)
    that ``checks`` find."""
    missing = missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError("\n".join(f"{key} is missing (???): give it a value, e.g. {key}=<value>" for key in missing))
    problems = []
    for check in checks:
        try:
            problems.extend(check(cfg))
        except OmegaConfBaseException as error:  # e.g. an interpolation that cannot be resolved
            problems.append(str(error))
    if problems:
        raise ConfigError("\n".join(problems))
