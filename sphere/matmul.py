"""Full float32 matrix products for the spectral numerics, whatever precision a run allows its network."""

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def highest_matmul_precision() -> Iterator[None]:
    """float32 matrix products in full float32 (no TensorFloat32 or bfloat16 passes) within the block, whatever
    `torch.set_float32_matmul_precision` allows outside it: the solver's data (data/generate.py), and the spectral
    transforms of the models (models/precision.py), must stay within float32 rounding."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
