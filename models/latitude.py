"""The latitude as an input: what a spectral layer cannot infer.

A spherical convolution is equivariant under rotations, but the shallow-water equations are not: the Coriolis
parameter f = 2 Omega sin(latitude) sets the dynamics. A network therefore needs the latitude as an input. sin of the
latitude is exactly f's shape, and depends on the latitude alone, so the network keeps the symmetry under
rotations about the axis (neuraloperator's default grid embedding adds a longitude sawtooth, which breaks it).
"""

import torch
from torch import nn

from models.metrics import QUADRATURE


def sin_latitude(nlat: int, grid: str) -> torch.Tensor:
    """sin(latitude) of the grid's rows, north first, shape (nlat,): the solver's own nodes."""
    cos_colatitude, _ = QUADRATURE[grid](nlat, -1, 1)
    return -torch.as_tensor(cos_colatitude, dtype=torch.float32)  # torch-harmonics: latitude = -arcsin(node)


class LatitudeInput(nn.Module):
    """``net`` applied to the state with sin(latitude) appended as one more channel.

    (batch, channels, nlat, nlon) -> net((batch, channels + 1, nlat, nlon)); ``net`` takes channels + 1 inputs.
    """

    def __init__(self, net: nn.Module, nlat: int, grid: str) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("sin_latitude", sin_latitude(nlat, grid).reshape(1, 1, nlat, 1), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        batch, _, nlat, nlon = state.shape
        latitude = self.sin_latitude.to(state.dtype).expand(batch, 1, nlat, nlon)
        return self.net(torch.cat([state, latitude], dim=1))
