"""Reduced precision (`trainer.precision=bf16-mixed`, `float32_matmul_precision=high`) with the spectral transforms
kept in float32.

Under autocast the pointwise layers (lifting, channel MLPs, projection) run in bfloat16, but FFTs and spherical
harmonic transforms must not: cuFFT has no bfloat16 transform, torch-harmonics' Legendre contraction loses most of
its digits in bfloat16 (torch-harmonics runs its own spectral convolutions in float32 and recommends it), and the
spectral weights are complex, which autocast leaves alone. `spectral_in_float32` makes every spectral convolution
and transform of a network run with autocast off, on a float32 input. `float32_matmul_precision` high or medium
lets float32 matrix products on a GPU run in TensorFloat32 (10 mantissa bits): the matrix-product transforms
(models/spherical.py) and torch-harmonics' Legendre contraction would lose their float32 accuracy, so the spectral
forwards run at "highest" (their backward passes follow the setting). With neither setting it changes nothing.
"""

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sphere.matmul import highest_matmul_precision

# neuraloperator's FFT convolution (FNO) and spherical convolution (SFNO; MatmulSphericalConv: models/spherical.py);
# torch-harmonics' transforms and the spectral convolution of its SFNO. Matched by class name, so that neuraloperator
# need not be imported for them.
SPECTRAL_MODULES = frozenset(
    {
        "SpectralConv",
        "SphericalConv",
        "MatmulSphericalConv",
        "SpectralConvS2",
        "RealSHT",
        "InverseRealSHT",
        "RealVectorSHT",
        "InverseRealVectorSHT",
        "RealFFT2",
        "InverseRealFFT2",
    }
)


def spectral_in_float32(net: nn.Module) -> nn.Module:
    """``net``, with the forward of each of its spectral modules wrapped by `float32_forward`; returns ``net``."""
    for module in net.modules():
        if type(module).__name__ in SPECTRAL_MODULES:
            module.forward = float32_forward(module.forward)
    return net


def float32_forward(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` with autocast off and a float32 first argument, where autocast is on for that argument's device,
    and with float32 matrix products at full precision."""

    @functools.wraps(forward)
    def wrapped(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        device = x.device.type
        autocast = torch.is_autocast_enabled(device)
        if not autocast and torch.get_float32_matmul_precision() == "highest":
            return forward(x, *args, **kwargs)
        with torch.autocast(device_type=device, enabled=False), highest_matmul_precision():
            return forward(x.float() if autocast and x.is_floating_point() else x, *args, **kwargs)

    return wrapped
