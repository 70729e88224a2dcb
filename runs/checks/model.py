"""The network must fit the data: its channels, its input grid and the modes the grid resolves.

The limits on modes were measured with neuraloperator 2.0.0 and torch-harmonics 0.8.0 (see each check).
"""

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from data import CHANNELS
from runs.checks.values import is_int

DATA_CHANNELS = len(CHANNELS)
LEARNABLE_EMBEDDINGS = ("learnable lat", "learnable latlon")


def check_model(cfg: DictConfig) -> Iterator[str]:
    """The network must fit the data: its channels, its input grid and the modes the grid resolves."""
    channels = OmegaConf.select(cfg, "model.channels")
    if channels != DATA_CHANNELS:
        yield (
            f"model.channels={channels!r}, but the data has {DATA_CHANNELS} channels "
            f"({', '.join(CHANNELS)}): pass model.channels={DATA_CHANNELS}"
        )
    else:
        # every network also gets sin(latitude) as an input channel (models/latitude.py)
        for key, wanted in (("in_channels", DATA_CHANNELS + 1), ("in_chans", DATA_CHANNELS + 1)):
            value = OmegaConf.select(cfg, f"model.net.{key}")
            if value is not None and value != wanted:
                yield (
                    f"model.net.{key}={value!r} must be {wanted}, the data's {DATA_CHANNELS} channels and "
                    "sin(latitude): drop the override"
                )
        for key in ("out_channels", "out_chans"):
            value = OmegaConf.select(cfg, f"model.net.{key}")
            if value is not None and value != DATA_CHANNELS:
                yield f"model.net.{key}={value!r} must match the data's {DATA_CHANNELS} channels: drop the override"
    nlat, nlon = OmegaConf.select(cfg, "data.nlat"), OmegaConf.select(cfg, "data.nlon")
    if not (is_int(nlat) and is_int(nlon) and nlat > 0 and nlon > 0):
        return  # reported by check_sizes
    yield from _modes(cfg, nlat, nlon)
    yield from _torch_harmonics_grid(cfg, nlat, nlon)


def _modes(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """neuraloperator's FNO and SFNO: n_modes[0] <= nlat and n_modes[1] <= nlon.

    Measured: beyond these limits FNO silently ignores the extra weights; SFNO silently computes spherical-harmonic
    degrees >= nlat (aliased, not resolvable by nlat latitudes) and crashes once n_modes[1] // 2 > nlon // 2 + 1.
    SFNO keeps n_modes[1] // 2 orders, so n_modes[1] = 1 fails (an assertion in torch-harmonics).
    """
    n_modes = OmegaConf.select(cfg, "model.net.n_modes")
    if n_modes is None:
        return
    modes = list(n_modes) if OmegaConf.is_list(n_modes) else [n_modes]
    spherical = str(OmegaConf.select(cfg, "model.net._target_", default="")).endswith("SFNO")
    smallest = [1, 2 if spherical else 1]
    if len(modes) != 2 or not all(is_int(mode) and mode >= low for mode, low in zip(modes, smallest, strict=True)):
        yield (
            f"model.net.n_modes={modes} must be two integers [latitude, longitude], at least {smallest}: "
            f"pass e.g. model.net.n_modes=[{nlat // 2},{nlon // 2}]"
        )
    elif modes[0] > nlat or modes[1] > nlon:
        name = "SFNO" if spherical else "FNO"
        yield (
            f"model.net.n_modes={modes} asks the {name} for more modes than the {nlat}x{nlon} data resolves "
            f"(n_modes[0] <= data.nlat={nlat}, n_modes[1] <= data.nlon={nlon}): "
            f"pass model.net.n_modes=[{min(modes[0], nlat)},{min(modes[1], nlon)}] or a finer data=..."
        )


def _torch_harmonics_grid(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """torch-harmonics' SFNO: built for one grid (img_size), and its learnable embeddings need scale_factor 1.

    Measured with 0.8.0: a wrong img_size or a learnable embedding at scale_factor > 1 crashes in the first forward
    pass (tensor size mismatch), that is after the data has been generated.
    """
    img_size = OmegaConf.select(cfg, "model.net.img_size")
    if img_size is not None and list(img_size) != [nlat, nlon]:
        yield (
            f"model.net.img_size={list(img_size)} does not match the data grid "
            f"[data.nlat, data.nlon]=[{nlat}, {nlon}]: drop the override (it follows the data by default)"
        )
    scale_factor = OmegaConf.select(cfg, "model.net.scale_factor")
    if scale_factor is None:
        return
    if not is_int(scale_factor) or scale_factor < 1:
        yield f"model.net.scale_factor={scale_factor!r} must be an integer >= 1: pass e.g. model.net.scale_factor=1"
    elif scale_factor > 1 and (pos_embed := OmegaConf.select(cfg, "model.net.pos_embed")) in LEARNABLE_EMBEDDINGS:
        yield (
            f"model.net.pos_embed='{pos_embed}' only works with "
            f"model.net.scale_factor=1 (got {scale_factor}): pass model.net.scale_factor=1 or another pos_embed"
        )
