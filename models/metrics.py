"""Error measures on the sphere.

A lat-lon grid over-represents the poles, so every measure here weights grid
points by the area they stand for (the grid's quadrature weights). Fields have
shape (..., channels, nlat, nlon); measures keep (..., channels).
"""

import math

import torch
from torch_harmonics import RealSHT
from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights, lobatto_weights

QUADRATURE = {  # grid name -> torch-harmonics quadrature: (nodes on [-1, 1], weights)
    "equiangular": clenshaw_curtiss_weights,
    "legendre-gauss": legendre_gauss_weights,
    "lobatto": lobatto_weights,
}


def area_weights(nlat: int, nlon: int, grid: str = "equiangular") -> torch.Tensor:
    """Weights of shape (nlat, 1) such that ``(w * f).sum((-2, -1))`` is the area mean of f."""
    _, weights = QUADRATURE[grid](nlat, -1, 1)
    weights = weights / weights.sum() / nlon
    return weights.reshape(nlat, 1).float()


def area_mean(field: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (field * weights).sum(dim=(-2, -1))


def squared_l2_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean squared error, averaged over everything but the grid."""
    return area_mean((prediction - target) ** 2, weights).mean()


def relative_l2(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """||prediction - target|| / ||target|| in the area-weighted L2 norm, per channel."""
    error = area_mean((prediction - target) ** 2, weights)
    norm = area_mean(target**2, weights)
    return (error / norm).sqrt()


def rmse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Area-weighted root mean squared error, per channel, in the fields' own units."""
    return area_mean((prediction - target) ** 2, weights).sqrt()


def mean_and_standard_error(
    total: torch.Tensor, total_of_squares: torch.Tensor, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of the mean from the sums of samples and of their squares (sums reduce over DDP
    ranks, lists of samples do not). The standard error is NaN with fewer than two samples."""
    mean = total / count
    variance = (total_of_squares - count * mean**2).clamp(min=0) / (count - 1)
    return mean, (variance / count).sqrt()


# Spherical-harmonic degrees (0 to n - 1) whose coefficients a grid of nlat rows gives exactly for fields in that
# band: Gauss rules integrate the product of two degree-l harmonics for l < nlat (Lobatto l < nlat - 1); on 32
# equiangular rows (Clenshaw-Curtis) a transform round trip was exact to l = 16, 2e-5 off at 17 and 0.13 at 32.
_RESOLVED_DEGREES = {
    "equiangular": lambda nlat: nlat // 2 + 1,
    "legendre-gauss": lambda nlat: nlat,
    "lobatto": lambda nlat: nlat - 1,
}


def spectrum_transform(nlat: int, nlon: int, grid: str = "equiangular") -> RealSHT:
    """The transform for `angular_power_spectrum`, cut at the degrees the grid resolves: beyond them a band-limited
    truth shows spurious energy of quadrature errors."""
    return RealSHT(nlat, nlon, lmax=_RESOLVED_DEGREES[grid](nlat), grid=grid)


def angular_power_spectrum(fields: torch.Tensor, sht: RealSHT) -> torch.Tensor:
    """Energy per spherical-harmonic degree l: (..., nlat, nlon) -> (..., lmax).

    Summed over l it is the field's area mean of squares, so spectra of grids of any size compare. The real
    transform keeps orders m >= 0; each m > 0 stands for the pair +-m and counts twice.
    """
    energy = sht(fields).abs() ** 2  # (..., lmax, mmax), orthonormal harmonics: sum = integral over the sphere
    energy[..., 1:] *= 2
    return energy.sum(dim=-1) / (4 * math.pi)
