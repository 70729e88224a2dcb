"""Error measures on the sphere, and the registry of the metrics every test reports (`METRICS`).

A lat-lon grid over-represents the poles, so every measure here weights grid
points by the area they stand for (the grid's quadrature weights). Fields have
shape (..., channels, nlat, nlon); measures keep (..., channels).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
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


def mean_with_standard_error(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over trajectories (axis 0) and the standard error of that mean (sample standard deviation / sqrt(n));
    the standard error is NaN with fewer than two trajectories."""
    mean = values.mean(axis=0)
    if len(values) < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, values.std(axis=0, ddof=1) / math.sqrt(len(values))


def root_mean_square(values: np.ndarray) -> tuple[np.ndarray, None]:
    """Root of the mean square over trajectories (axis 0): per-trajectory RMSEs -> the RMSE over all of them."""
    return np.sqrt((values**2).mean(axis=0)), None


CHANNEL_MEAN = "mean"  # the column of a metric's mean over channels: each trajectory's channel mean, then aggregated


@dataclass(frozen=True)
class Metric:
    """An error measure of the test stage, declared once: the test step computes it per trajectory for the model and
    every baseline, test_errors.npz keeps those values, test_metrics.json their aggregate (and standard error, where
    the aggregate has one) under its name, and the run's plots draw it where ``plotted``.

    ``per_trajectory(forecast, target, weights)``: fields (..., channels, nlat, nlon) -> (..., channels), in
    normalised units, or in physical units where ``physical_units``. ``aggregate``: values (trajectory, ...) -> (value,
    standard error or None) over the trajectories. ``channel_mean``: whether a mean over channels means something
    (not for measures in each channel's own units). ``label``: the axis label of its plots.
    """

    name: str
    per_trajectory: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    aggregate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    label: str
    physical_units: bool = False
    channel_mean: bool = True
    plotted: bool = True

    def columns(self, channels: list[str]) -> list[str]:
        """The reported columns: the channels, and `CHANNEL_MEAN` where the metric has one."""
        return [*channels, CHANNEL_MEAN] if self.channel_mean else list(channels)

    def per_column(self, values: np.ndarray) -> np.ndarray:
        """(trajectory, channel, lead) -> (trajectory, column, lead): the channel mean per trajectory appended."""
        if not self.channel_mean:
            return values
        return np.concatenate([values, values.mean(axis=1, keepdims=True)], axis=1)

    def summary(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(trajectory, channel, lead) -> the aggregate and its standard error (or None), each (column, lead)."""
        return self.aggregate(self.per_column(values))


# Every metric of the test stage, in report order. Adding one here adds it to the test step, test_errors.npz,
# test_metrics.json and the run's plots.
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("rel_l2", relative_l2, mean_with_standard_error, label="relative L2 error"),
        Metric("rmse", rmse, root_mean_square, label="RMSE (physical units)", physical_units=True, channel_mean=False),
    )
}
