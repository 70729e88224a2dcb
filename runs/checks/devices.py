"""Where the data is generated: data.device must name a device this machine has."""

import ctypes
import os
from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from data import DEVICES


def check_data_device(cfg: DictConfig) -> Iterator[str]:
    """data.device must name where the solver can run: cuda needs a GPU (an absent key is the data module's auto)."""
    device = OmegaConf.select(cfg, "data.device", default="auto")
    if device not in DEVICES:
        yield f"data.device={device!r} must be one of {', '.join(DEVICES)}: pass data.device=auto"
    elif device == "cuda" and not cuda_gpu_visible():
        yield (
            "data.device=cuda, but this machine has no CUDA GPU (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides "
            "them): pass data.device=auto (the GPU when there is one) or data.device=cpu"
        )


def cuda_gpu_visible() -> bool:
    """Whether the NVIDIA driver is installed and CUDA_VISIBLE_DEVICES leaves a GPU to it, as torch's CUDA needs.

    Found without importing torch (seconds) and without initialising CUDA (a process forked later could not use it):
    loading the driver's library initialises nothing.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.split(",")[0].strip() in ("", "-1"):
        return False
    for library in ("libcuda.so.1", "nvcuda.dll"):
        try:
            ctypes.CDLL(library)
        except OSError:
            continue
        return True
    return False
