"""What the test stage measures at each lead of a rollout, for every forecast and the truth: the metrics of
`models.metrics.METRICS` and the physical diagnostics of `sphere.diagnostics`, per trajectory, so that a rollout of
any length is measured hour by hour and never held whole.

States come in two units: normalised (what the networks see; the errors of METRICS without physical units, the
latitude bands and the power spectra are taken there, as `rel_l2` is) and physical (the invariants, the channel
moments and the authors' pooled metric, whose meaning needs the fields' own units). Every measure is taken in float32
or float64 at full precision, whatever the run's (`trainer.precision=bf16-mixed`, TensorFloat32): the truth's energy
above the band edge is 1e-13 of the whole, and a drift of the mass of 1e-8 has to show.
"""

import functools
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import nn

from models.metrics import METRICS, angular_power_spectrum, area_mean, area_weights, spectrum_transform
from sphere.diagnostics import (
    Invariants,
    band_edges,
    energy_fraction_above,
    latitude_band_relative_l2,
    pooled_relative_l2,
)
from sphere.matmul import highest_matmul_precision

LATITUDE_BANDS = 6  # equal bands from the poles to the equator, both hemispheres each (sphere.diagnostics)
# The example rollout of the maps and the animation keeps the map leads and at most this many evenly spaced hours:
# a GIF of a few MB whatever the rollout's length.
MAX_EXAMPLE_FRAMES = 50


class Trajectories(Protocol):
    """A batch of trajectories, (batch, states, 3, nlat, nlon), as the test step reads it: ``[:, hour]``, one hour at
    a time. A tensor is one; so is a data module's batch streamed from its file (data.datamodule.StreamedTrajectories).
    """

    def __getitem__(self, index: tuple[slice, int]) -> torch.Tensor: ...


def example_frame_hours(steps: int, map_leads: list[int], max_frames: int = MAX_EXAMPLE_FRAMES) -> list[int]:
    """The lead hours of the example rollout to keep: every hour of a rollout of up to ``max_frames`` hours, else
    ``max_frames`` evenly spaced ones from 1 to ``steps``; the map leads always."""
    spaced = np.unique(np.linspace(1, steps, min(steps, max_frames)).round().astype(int))
    return sorted(set(spaced.tolist()) | {lead for lead in map_leads if lead <= steps})


def latitude_band_edges(nlat: int, grid: str) -> list[tuple[float, float]]:
    """The |latitude| edges of `LATITUDE_BANDS` bands, or of as many as a coarse grid gives a row each (six need 13
    rows of an equiangular grid): a tiny test grid is measured in wider bands rather than not at all."""
    for bands in range(LATITUDE_BANDS, 1, -1):
        try:
            return band_edges(nlat, bands, grid)
        except ValueError:
            continue
    return band_edges(nlat, 1, grid)


def full_precision(measure: Callable[..., dict[str, torch.Tensor]]) -> Callable[..., dict[str, torch.Tensor]]:
    """``measure(self, *fields)`` with autocast off, float32 matrix products at full precision and its fields in
    float32 at least (a forecast of a bfloat16 network may come in bfloat16)."""

    @functools.wraps(measure)
    def wrapped(self: nn.Module, *fields: torch.Tensor) -> dict[str, torch.Tensor]:
        device = fields[0].device.type
        with torch.autocast(device_type=device, enabled=False), highest_matmul_precision():
            return measure(self, *(field.float() if field.dtype != torch.float64 else field for field in fields))

    return wrapped


class LeadDiagnostics(nn.Module):
    """Per-trajectory measures of the states at one lead.

    ``band_limit``: the data's band edge (data.lmax, the degrees the solver keeps): the invariants use the solver's
    transforms at that band, and the energy fraction above it is what a forecast made up at scales the data never
    has. None (no data module to say it): the degrees the grid resolves, above which nothing lies.
    """

    def __init__(self, nlat: int, nlon: int, grid: str, band_limit: int | None) -> None:
        super().__init__()
        self.sht = spectrum_transform(nlat, nlon, grid)
        self.band_limit = self.sht.lmax if band_limit is None else band_limit
        self.grid = grid
        self.band_edges = latitude_band_edges(nlat, grid)
        self.invariants = Invariants(nlat, nlon, grid, band_limit)
        self.register_buffer("weights", area_weights(nlat, nlon, grid), persistent=False)

    @full_precision
    def of_states(self, normalised: torch.Tensor, physical: torch.Tensor) -> dict[str, torch.Tensor]:
        """Measures of each source's own states (the truth's or a forecast's), (..., 3, nlat, nlon) each ->
        "invariants" (..., invariant), "moments" (..., channel, 2): the area mean and mean square in physical units,
        float64; "power_spectrum" (..., channel, degree) and "energy_fraction_above" (..., channel) of the
        normalised fields."""
        physical64 = physical.double()
        spectrum = angular_power_spectrum(normalised, self.sht)
        return {
            "invariants": self.invariants(physical64),
            "moments": torch.stack([area_mean(physical64, self.weights), area_mean(physical64**2, self.weights)], -1),
            "power_spectrum": spectrum.double(),
            "energy_fraction_above": energy_fraction_above(spectrum, self.band_limit).double(),
        }

    @full_precision
    def of_errors(
        self,
        forecast: torch.Tensor,
        target: torch.Tensor,
        physical_forecast: torch.Tensor,
        physical_target: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Errors of forecasts (..., 3, nlat, nlon) against the truth: every metric of METRICS (..., channel), the
        "latitude_band_rel_l2" (..., channel, band) and the authors' "authors_pooled_rel_l2" (...), float64."""
        errors = {}
        for name, metric in METRICS.items():
            pair = (physical_forecast, physical_target) if metric.physical_units else (forecast, target)
            errors[name] = metric.per_trajectory(*pair, self.weights).double()
        errors["latitude_band_rel_l2"] = latitude_band_relative_l2(
            forecast, target, self.weights, len(self.band_edges), self.grid
        ).double()
        errors["authors_pooled_rel_l2"] = pooled_relative_l2(physical_forecast, physical_target, self.weights).double()
        return errors
