"""`resume=<run folder>`: the run must be readable and resumable, and the command must not change its config."""

from collections.abc import Callable, Iterator
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runs.folder import LAST_CHECKPOINT, SAVED_CONFIG, DamagedFileError, checkpoint_progress, saved_config
from runs.overrides import override_key

# The overrides `resume=<run folder>` accepts: they extend the training without changing what has been trained so far.
RESUME_OVERRIDES = ("training.max_epochs", "resume")


def check_resume(cfg: DictConfig) -> Iterator[str]:
    """`resume=<folder>` must name a run with a readable config and checkpoint, and come without overrides that
    change its config.

    The overrides and the run mode are read from the `hydra` node; a config without one skips those checks.
    """
    run = OmegaConf.select(cfg, "resume")
    if run is None:
        return
    if not (Path(run) / SAVED_CONFIG).is_file():
        yield f"resume={run} is not a run folder (it has no {SAVED_CONFIG}): pass the folder of the run to continue"
        return
    if not (Path(run) / LAST_CHECKPOINT).is_file():
        yield (
            f"resume={run} has no {LAST_CHECKPOINT} to continue from (it stopped before its first checkpoint): "
            "start the run again instead"
        )
    else:
        yield from _damaged(lambda: checkpoint_progress(Path(run) / LAST_CHECKPOINT))
    yield from _damaged(lambda: saved_config(Path(run)))
    overrides = OmegaConf.select(cfg, "hydra.overrides.task", default=[])
    refused = [override for override in overrides if override_key(override) not in RESUME_OVERRIDES]
    if refused:
        yield (
            "resume continues a run with the config it was started with; the only override it accepts is "
            f"training.max_epochs (to train longer): drop {' '.join(refused)}, or start a new run with them"
        )
    if OmegaConf.select(cfg, "hydra.mode") == RunMode.MULTIRUN:
        yield "resume continues one run: run it without -m (--multirun)"


def _damaged(read: Callable[[], object]) -> Iterator[str]:
    try:
        read()
    except DamagedFileError as error:
        yield str(error)
