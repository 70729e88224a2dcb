"""Starting a new run from another run's weights: `python train.py init_from=<checkpoint or run folder> ...`.

`resume=` continues one run: its folder, its config, its optimizer state and epoch count. `init_from=` starts a new
run, in a folder of its own, with any config whose network has the same parameter names and shapes (another learning
rate, rollout training, more epochs, other data of the same grid): only the network's weights are taken; the
optimizer, the schedule, the epochs and the data's normalisation start anew.
"""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from runs.folder import SAVED_CONFIG, DamagedFileError, find_checkpoint

if TYPE_CHECKING:  # torch is imported where it is used: a config check without init_from costs no torch import
    import torch

log = logging.getLogger(__name__)

NETWORK_PREFIX = "net."  # the network's tensors in the Lightning module's state dict
KEYS_SHOWN = 5  # of each kind of mismatch, in the message


class WeightMismatchError(ValueError):
    """The checkpoint's network does not fit the network this config builds; the message names the keys."""


def initial_checkpoint(source: str | Path) -> Path:
    """The checkpoint ``source`` names: a .ckpt file, or a run folder's best checkpoint (the one chosen on
    validation, which its test stage reports on)."""
    source = Path(source)
    if source.is_dir():
        if not (source / SAVED_CONFIG).is_file():
            raise FileNotFoundError(f"{source} is not a run folder (it has no {SAVED_CONFIG})")
        return find_checkpoint(source, "best")
    if not source.is_file():
        raise FileNotFoundError(f"no checkpoint or run folder at {source}")
    return source


def network_weights(checkpoint: Path) -> "dict[str, torch.Tensor]":
    """The network's tensors in ``checkpoint``, by their state-dict keys; `DamagedFileError` when it cannot be read."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as error:  # zip, pickle, EOF and missing-key errors all mean the file is not a usable checkpoint
        raise DamagedFileError(f"{checkpoint} cannot be read as a checkpoint ({type(error).__name__})") from error
    return {key: value for key, value in state.items() if key.startswith(NETWORK_PREFIX)}


def mismatch(network: "torch.nn.Module", weights: "dict[str, torch.Tensor]") -> list[str]:
    """How ``weights`` differ from ``network``'s own tensors (keys missing, keys extra, shapes); [] when they fit."""
    own = {key: value for key, value in network.state_dict().items() if key.startswith(NETWORK_PREFIX)}
    problems = []
    missing = sorted(own.keys() - weights.keys())
    extra = sorted(weights.keys() - own.keys())
    if missing:
        problems.append(f"missing from the checkpoint: {_some(missing)}")
    if extra:
        problems.append(f"not in this config's network: {_some(extra)}")
    shapes = [
        f"{key} {list(weights[key].shape)} in the checkpoint, {list(own[key].shape)} here"
        for key in sorted(own.keys() & weights.keys())
        if weights[key].shape != own[key].shape
    ]
    if shapes:
        problems.append(f"shapes differ: {_some(shapes)}")
    return problems


def _some(items: list[str]) -> str:
    more = f" (and {len(items) - KEYS_SHOWN} more)" if len(items) > KEYS_SHOWN else ""
    return ", ".join(items[:KEYS_SHOWN]) + more


def load_initial_weights(module: "torch.nn.Module", source: str | Path) -> None:
    """Copy the network weights of ``source`` (a checkpoint or a run folder) into ``module``'s network."""
    checkpoint = initial_checkpoint(source)
    weights = network_weights(checkpoint)
    problems = mismatch(module, weights)
    if problems:
        raise WeightMismatchError(f"init_from={source}: the network does not fit: {'; '.join(problems)}")
    module.load_state_dict(weights, strict=False)  # the network's keys, checked above; the rest starts anew
    log.info("network initialised from %s (%d tensors)", checkpoint, len(weights))


def check_init_from(cfg: DictConfig) -> Iterator[str]:
    """`init_from=<checkpoint or run folder>` must name a readable checkpoint whose network fits the one ``cfg``
    builds, and cannot be combined with `resume=`."""
    source = OmegaConf.select(cfg, "init_from")
    if source is None:
        return
    if OmegaConf.select(cfg, "resume") is not None:
        yield (
            "init_from and resume exclude each other: resume=<run> continues that run with its config; "
            "init_from=<run> starts a new run from its weights: drop one of them"
        )
        return
    try:
        weights = network_weights(initial_checkpoint(source))
    except (FileNotFoundError, DamagedFileError) as error:
        yield f"init_from={source}: {error}: pass a .ckpt file or a run folder with a checkpoint in ckpt/"
        return
    from runs.build import untrained_module

    problems = mismatch(untrained_module(cfg), weights)
    if problems:
        yield (
            f"init_from={source}: its network does not fit the one this config builds ({'; '.join(problems)}): "
            "keep the model and data settings of that run (model.*, data.nlat/nlon), or start from scratch"
        )
