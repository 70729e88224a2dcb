"""Shallow-water data: the solver (solver.py), generation and cache (generate.py), the data module (datamodule.py)
and the baselines fitted to it (baselines.py)."""

import importlib
import math
import re

# The state's channels, in order: the one place that names them (and so counts them).
CHANNELS = ("geopotential", "vorticity", "divergence")
# Where the solver may run (data.device): "auto" is the GPU when torch finds one. Here, not in generate.py, so that
# the config checks can name them without importing torch.
DEVICES = ("auto", "cpu", "cuda")
# The hyperdiffusion rules of data.hyperdiffusion (docs/data.md): "grid" damps as torch-harmonics' solver does, tied to
# each grid's highest degree; "fixed" applies data.hyperdiffusion_reference's damping rate per degree on every grid.
HYPERDIFFUSION_RULES = ("grid", "fixed")
_GRID_NAME = re.compile(r"(\d+)x(\d+)")


def band_limit(nlat: int) -> int:
    """The spherical-harmonic degrees (and orders) the shallow-water solver keeps on ``nlat`` latitudes: a third,
    torch-harmonics' choice, which leaves the products of the nonlinear terms unaliased."""
    return math.ceil(nlat / 3)


def reference_band(reference: str) -> int:
    """The band (data.lmax) of the grid named ``reference`` as the presets are named, "<nlat>x<nlon>" (e.g. 32x64).
    Raises ValueError for another name."""
    match = _GRID_NAME.fullmatch(str(reference))
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"{reference!r} does not name a grid as <nlat>x<nlon>, e.g. 32x64")
    return band_limit(int(match[1]))


def hyperdiffusion_band(rule: str, reference: str, lmax: int) -> int:
    """The band whose highest degree sets the hyperdiffusion's rate per degree: the data's own ``lmax`` under
    "grid" (torch-harmonics' rule), the ``reference`` grid's under "fixed"."""
    if rule not in HYPERDIFFUSION_RULES:
        raise ValueError(f"data.hyperdiffusion={rule!r} must be one of {', '.join(HYPERDIFFUSION_RULES)}")
    return lmax if rule == "grid" else reference_band(reference)


__all__ = [
    "CHANNELS",
    "DEVICES",
    "HYPERDIFFUSION_RULES",
    "DataSpec",
    "ShallowWaterDataModule",
    "band_limit",
    "ensure_cached",
    "hyperdiffusion_band",
    "reference_band",
]
_LAZY = {"DataSpec": "data.generate", "ensure_cached": "data.generate", "ShallowWaterDataModule": "data.datamodule"}


def __getattr__(name: str) -> object:
    # Imported on first use: torch and h5py take seconds, and Lightning more, while a config check only needs the
    # channel names, and a process that only generates data never needs Lightning.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
