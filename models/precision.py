"""Reduced precision (`trainer.precision=bf16-mixed`, `float32_matmul_precision=high`) with the spectral transforms
kept in float32.

Under autocast the pointwise layers (lifting, channel MLPs, projection) run in bfloat16, but FFTs and spherical
harmonic transforms must not: cuFFT has no bfloat16 transform, torch-harmonics' Legendre contraction loses most of
its digits in bfloat16 (torch-harmonics runs its own spectral convolutions in float32 and recommends it), and the
spectral weights are complex, which autocast leaves alone. `spectral_in_float32` makes every spectral convolution
and transform of a network run with autocast off, on a float32 input. A spectral layer declares itself with
`register_spectral` (the app's own layers) or in `LIBRARY_SPECTRAL_LAYERS` (a library's).
`float32_matmul_precision` high or medium lets float32 matrix products on a GPU run in TensorFloat32 (10 mantissa
bits): the matrix-product transforms (models/spherical.py) and torch-harmonics' Legendre contraction would lose
their float32 accuracy, so the spectral forwards run at "highest" (their backward passes follow the setting).
With neither setting it changes nothing.
"""

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sphere.matmul import highest_matmul_precision

# The spectral layers of the libraries the configs use (module -> classes): neuraloperator's FFT convolution (FNO)
# and spherical convolution (SFNO), torch-harmonics' transforms and its SFNO's spectral convolution. Each entry is
# looked up only once its module has been imported, so neither library is imported for it; a subclass counts too.
LIBRARY_SPECTRAL_LAYERS = {
    "neuralop.layers.spectral_convolution": ("SpectralConv",),
    "neuralop.layers.spherical_convolution": ("SphericalConv",),
    "torch_harmonics.sht": ("RealSHT", "InverseRealSHT", "RealVectorSHT", "InverseRealVectorSHT"),
    "torch_harmonics.examples.models._layers": ("SpectralConvS2", "RealFFT2", "InverseRealFFT2"),
}

# Spectral layer classes declared with `register_spectral`, and the methods of each that run in float32.
_registered: dict[type, tuple[str, ...]] = {}


def register_spectral(*methods: str) -> Callable[[type], type]:
    """Class decorator: the class is a spectral layer whose ``methods`` (default: ``forward``) `spectral_in_float32`
    keeps in float32. Subclasses inherit the declaration and may add methods of their own."""

    def register(cls: type) -> type:
        _registered[cls] = methods or ("forward",)
        return cls

    return register


def spectral_methods(module: nn.Module) -> set[str]:
    """The names of ``module``'s methods that are spectral, from the declarations of its class and its bases."""
    for module_name, class_names in LIBRARY_SPECTRAL_LAYERS.items():
        if module_name in sys.modules:
            library = importlib.import_module(module_name)
            for class_name in class_names:
                _registered.setdefault(getattr(library, class_name), ("forward",))
    return {method for cls in type(module).__mro__ for method in _registered.get(cls, ())}


def spectral_in_float32(net: nn.Module) -> nn.Module:
    """``net``, with each spectral method of its modules (see `register_spectral`) wrapped by `float32_forward`;
    returns ``net``."""
    for module in net.modules():
        for method in spectral_methods(module):
            setattr(module, method, float32_forward(getattr(module, method)))
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
