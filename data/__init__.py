"""Shallow-water data: the solver (solver.py), generation and cache (generate.py), the data module (datamodule.py)
and the baselines fitted to it (baselines.py)."""

import importlib

# The state's channels, in order: the one place that names them (and so counts them).
CHANNELS = ("geopotential", "vorticity", "divergence")
# Where the solver may run (data.device): "auto" is the GPU when torch finds one. Here, not in generate.py, so that
# the config checks can name them without importing torch.
DEVICES = ("auto", "cpu", "cuda")

__all__ = ["CHANNELS", "DEVICES", "DataSpec", "ShallowWaterDataModule", "ensure_cached"]
_LAZY = {"DataSpec": "data.generate", "ensure_cached": "data.generate", "ShallowWaterDataModule": "data.datamodule"}


def __getattr__(name: str) -> object:
    # Imported on first use: torch and h5py take seconds, and Lightning more, while a config check only needs the
    # channel names, and a process that only generates data never needs Lightning.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
