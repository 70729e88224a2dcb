"""The network must fit the data: its channels, its input grid and the modes the grid resolves.

Read from the model-level keys every model config declares (the contract at the top of config/model_globals.yaml),
never from the network's own argument names: a new model that follows the contract is checked as it is.
The limits on modes were measured with neuraloperator 2.0.0 and torch-harmonics 0.8.0 (see each check).
"""

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from data import CHANNELS
from runs.checks.values import is_int

DATA_CHANNELS = len(CHANNELS)
# The model-level keys a network takes through `${model.<key>}` when they are declared (not null).
CONTRACT_KEYS = ("channels", "inputs", "modes", "grid", "scale_factor", "embedding")


def check_model(cfg: DictConfig) -> Iterator[str]:
    """The network must fit the data: its channels, its input grid and the modes the grid resolves."""
    yield from _taken_by_the_net(cfg)
    channels, inputs = OmegaConf.select(cfg, "model.channels"), OmegaConf.select(cfg, "model.inputs")
    if channels != DATA_CHANNELS:
        yield (
            f"model.channels={channels!r}, but the data has {DATA_CHANNELS} channels "
            f"({', '.join(CHANNELS)}): pass model.channels={DATA_CHANNELS}"
        )
    elif inputs != DATA_CHANNELS + 1:  # every network also gets sin(latitude) as an input (models/latitude.py)
        yield (
            f"model.inputs={inputs!r} must be {DATA_CHANNELS + 1}, the data's {DATA_CHANNELS} channels and "
            "sin(latitude): drop the override"
        )
    nlat, nlon = OmegaConf.select(cfg, "data.nlat"), OmegaConf.select(cfg, "data.nlon")
    if not (is_int(nlat) and is_int(nlon) and nlat > 0 and nlon > 0):
        return  # reported by check_sizes
    yield from _modes(cfg, nlat, nlon)
    yield from _grid(cfg, nlat, nlon)


def _taken_by_the_net(cfg: DictConfig) -> Iterator[str]:
    """Each declared contract key must reach the network: a net key overridden past it would go unchecked."""
    net = OmegaConf.select(cfg, "model.net")
    if net is None:
        return
    raw = OmegaConf.to_container(net, resolve=False)
    used = set(_leaves(raw))
    for key in CONTRACT_KEYS:
        if OmegaConf.select(cfg, f"model.{key}") is not None and f"${{model.{key}}}" not in used:
            yield (
                f"model.net takes no ${{model.{key}}}: a model.net key was overridden in place of model.{key}, or "
                f"the model config does not follow the contract of config/model_globals.yaml: set model.{key} "
                "instead of the network's own key"
            )


def _leaves(node: object) -> Iterator[str]:
    """Every leaf value of a raw (unresolved) container."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield str(node)


def _modes(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """model.modes within the grid: modes[0] <= nlat and modes[1] <= nlon, at least [1, 2] for a spherical net.

    Measured with neuraloperator: beyond these limits FNO silently ignores the extra weights; SFNO silently computes
    spherical-harmonic degrees >= nlat (aliased, not resolvable by nlat latitudes) and crashes once
    n_modes[1] // 2 > nlon // 2 + 1. SFNO keeps n_modes[1] // 2 orders, so n_modes[1] = 1 fails (an assertion in
    torch-harmonics).
    """
    declared = OmegaConf.select(cfg, "model.modes")
    if declared is None:
        return
    modes = list(declared) if OmegaConf.is_list(declared) else [declared]
    spherical = OmegaConf.select(cfg, "model.spherical") is True
    smallest = [1, 2 if spherical else 1]
    if len(modes) != 2 or not all(is_int(mode) and mode >= low for mode, low in zip(modes, smallest, strict=True)):
        yield (
            f"model.modes={modes} must be two integers [latitude, longitude], at least {smallest}: "
            f"pass e.g. model.modes=[{nlat // 2},{nlon // 2}]"
        )
    elif modes[0] > nlat or modes[1] > nlon:
        kind = "spherical" if spherical else "planar"
        yield (
            f"model.modes={modes} asks the {kind} network for more modes than the {nlat}x{nlon} data resolves "
            f"(modes[0] <= data.nlat={nlat}, modes[1] <= data.nlon={nlon}): "
            f"pass model.modes=[{min(modes[0], nlat)},{min(modes[1], nlon)}] or a finer data=..."
        )


def _grid(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """A net built for one grid must be built for the data's, and a learnable embedding needs scale_factor 1.

    Measured with torch-harmonics 0.8.0's SFNO: a wrong img_size or a learnable embedding at scale_factor > 1
    crashes in the first forward pass (tensor size mismatch), that is after the data has been generated.
    """
    grid = OmegaConf.select(cfg, "model.grid")
    if grid is not None and list(grid) != [nlat, nlon]:
        yield (
            f"model.grid={list(grid)} does not match the data grid "
            f"[data.nlat, data.nlon]=[{nlat}, {nlon}]: drop the override (it follows the data by default)"
        )
    scale_factor = OmegaConf.select(cfg, "model.scale_factor")
    if scale_factor is None:
        return
    embedding = OmegaConf.select(cfg, "model.embedding")
    if not is_int(scale_factor) or scale_factor < 1:
        yield f"model.scale_factor={scale_factor!r} must be an integer >= 1: pass e.g. model.scale_factor=1"
    elif scale_factor > 1 and str(embedding).startswith("learnable"):
        yield (
            f"model.embedding='{embedding}' only works with model.scale_factor=1 (got {scale_factor}): "
            "pass model.scale_factor=1 or another model.embedding"
        )
