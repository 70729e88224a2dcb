"""The forecasts a referee asks a learned model to beat, built from the training split alone.

Each baseline is a one-hour stepper on normalised states, (batch, C, nlat, nlon) -> (batch, C, nlat, nlon) with C the
channels of `data.CHANNELS`, so a test rolls it out exactly as it rolls out a model:

- persistence: no change;
- climatology: the training split's mean state, whatever the input;
- linear: the least-squares linear spectral emulator. The shallow-water equations linearised around rest are
  zonally symmetric, so each zonal wavenumber m evolves on its own: one complex matrix per m, acting on every
  (channel, degree l) coefficient at that m, is the exact form of the linearised one-hour map. Fitted to the
  training split's consecutive states, it captures all the linear dynamics (gravity and Rossby waves, Coriolis,
  hyperdiffusion), so what a model gains over it is the nonlinear part.

A baseline is one subclass of `Baseline`: its name, and `fit` if it learns from the training split. Defining it
registers it in `BASELINES`; data generation fits every registered baseline and stores it in the data file, the data
module reads every one back, and the test scores every one, in registry order.
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

import h5py
import torch
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

from data import CHANNELS

if TYPE_CHECKING:
    from data.generate import DataSpec

# The data file's group of baselines: one subgroup per baseline, one dataset per persistent buffer.
GROUP = "baselines"

BASELINES: dict[str, type["Baseline"]] = {}  # name -> class, in the order the classes are defined


class Baseline(nn.Module):
    """A one-hour stepper on normalised states, built for the data's grid and band, registered under ``name``.

    What a baseline learns lives in its persistent buffers (float or complex): `save` and `load` store them in the
    data file and read them back, the same way for every baseline.
    """

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        BASELINES[cls.name] = cls

    def __init__(self, nlat: int, nlon: int, grid: str, lmax: int) -> None:
        super().__init__()

    def fit(self, training: Iterable[torch.Tensor]) -> "Baseline":
        """Learn from ``training``, the normalised training split in float64 chunks (num, steps, C, nlat, nlon),
        iterated at most once (a baseline that learns nothing does not read it); returns self."""
        return self

    def save(self, group: h5py.Group) -> None:
        """Write the persistent buffers into ``group``, one dataset each; complex ones as (..., 2) real."""
        for key, buffer in self.state_dict().items():
            group.create_dataset(key, data=(torch.view_as_real(buffer) if buffer.is_complex() else buffer).numpy())

    def load(self, group: h5py.Group) -> "Baseline":
        """Read back what `save` wrote into ``group``; returns self."""
        state = {}
        for key, buffer in self.state_dict().items():
            stored = torch.from_numpy(group[key][()])
            state[key] = torch.view_as_complex(stored) if buffer.is_complex() else stored
        self.load_state_dict(state)
        return self


def fit_baselines(spec: "DataSpec", training: Callable[[], Iterable[torch.Tensor]]) -> dict[str, Baseline]:
    """Every registered baseline, fitted on the chunks of the normalised training split that ``training()`` yields
    (called once per baseline)."""
    return {name: kind(spec.nlat, spec.nlon, spec.grid, spec.lmax).fit(training()) for name, kind in BASELINES.items()}


def save_baselines(baselines: dict[str, Baseline], file: h5py.File) -> None:
    for name, baseline in baselines.items():
        baseline.save(file.create_group(f"{GROUP}/{name}"))


def load_baselines(file: h5py.File, spec: "DataSpec") -> dict[str, Baseline]:
    """Every registered baseline, as `save_baselines` stored it in ``file``."""
    return {
        name: kind(spec.nlat, spec.nlon, spec.grid, spec.lmax).load(file[f"{GROUP}/{name}"])
        for name, kind in BASELINES.items()
    }


def missing_baselines(file: h5py.File) -> list[str]:
    """The registered baselines that ``file`` does not hold (a file from before a baseline was added)."""
    return [name for name in BASELINES if f"{GROUP}/{name}" not in file]


class Persistence(Baseline):
    """No change: the state an hour on is the state now."""

    name = "persistence"

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return state


class Climatology(Baseline):
    """The mean state of the training split, (C, nlat, nlon)."""

    name = "climatology"

    def __init__(self, nlat: int, nlon: int, grid: str, lmax: int) -> None:
        super().__init__(nlat, nlon, grid, lmax)
        self.register_buffer("mean_state", torch.zeros(len(CHANNELS), nlat, nlon, dtype=torch.float64))

    def fit(self, training: Iterable[torch.Tensor]) -> "Climatology":
        total, states = 0, 0
        for chunk in training:
            total = total + chunk.sum(dim=(0, 1))
            states += chunk.shape[0] * chunk.shape[1]
        self.mean_state.copy_(total / states)
        return self

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mean_state.to(state.dtype).expand_as(state)


class LinearSpectralEmulator(Baseline):
    """x(t + 1 h) = A_m x(t) per zonal wavenumber m, on spherical-harmonic coefficients of degree and order < lmax.

    ``matrices`` has shape (mmax, C * lmax + 1, C * lmax) complex, C the channels: row C * lmax is a constant term,
    which only order 0 needs (the normalisation shifts each channel's global mean, an l = m = 0 coefficient).
    """

    name = "linear"

    def __init__(self, nlat: int, nlon: int, grid: str, lmax: int) -> None:
        super().__init__(nlat, nlon, grid, lmax)
        self.lmax = self.mmax = lmax
        self.channels = len(CHANNELS)
        # float64 transforms: the fit must resolve a nonlinear part of a fraction of a percent
        self.sht = RealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid).double()
        self.isht = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid).double()
        unknowns = self.channels * lmax
        self.register_buffer("matrices", torch.zeros(lmax, unknowns + 1, unknowns, dtype=torch.complex128))

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """(batch, C, nlat, nlon) -> (mmax, batch, C * lmax + 1) complex128: coefficients per order, and a 1."""
        coefficients = self.sht(states.to(torch.float64))  # (batch, C, lmax, mmax)
        batch = len(states)
        per_order = coefficients.permute(3, 0, 1, 2).reshape(self.mmax, batch, self.channels * self.lmax)
        ones = per_order.new_ones(self.mmax, batch, 1)
        return torch.cat([per_order, ones], dim=2)

    def fit(self, trajectories: Iterable[torch.Tensor]) -> "LinearSpectralEmulator":
        """Least squares over every pair of consecutive states of ``trajectories``, chunks of shape
        (num, steps, C, nlat, nlon); returns self.

        The pairs are folded, a block at a time, into the R factor of a QR decomposition of [inputs | targets], so
        that memory does not grow with their number: with X = QR, Q's columns orthonormal, least squares on R's rows
        is least squares on all pairs, and so is its minimum-norm solution.
        """
        unknowns = self.channels * self.lmax + 1
        reduced = None  # (mmax, rows <= 2CL + 1, 2CL + 1): the R factor of the pairs folded so far
        pending, pending_rows, pairs = [], 0, 0
        for chunk in trajectories:
            features = self.features(chunk.flatten(0, 1)).unflatten(1, chunk.shape[:2])  # (mmax, num, steps, CL+1)
            inputs = features[:, :, :-1].flatten(1, 2)  # (mmax, pairs, CL + 1)
            targets = features[:, :, 1:, :-1].flatten(1, 2)  # (mmax, pairs, CL)
            pending.append(torch.cat([inputs, targets], dim=2).cpu())
            pending_rows += inputs.shape[1]
            pairs += inputs.shape[1]
            if pending_rows >= 2 * unknowns:
                reduced, pending, pending_rows = self._fold(reduced, pending), [], 0
        reduced = self._fold(reduced, pending)
        # gelsd gives the minimum-norm solution where columns are zero (l < m) or the constant is redundant (m > 0);
        # its cut-off for small singular values is the one it would use on all pairs at once.
        rcond = torch.finfo(torch.float64).eps * max(pairs, unknowns)
        solution = torch.linalg.lstsq(reduced[..., :unknowns], reduced[..., unknowns:], rcond=rcond, driver="gelsd")
        self.matrices.copy_(solution.solution)
        return self

    @staticmethod
    def _fold(reduced: torch.Tensor | None, blocks: list[torch.Tensor]) -> torch.Tensor:
        """The R factor of ``reduced`` stacked on ``blocks`` of rows, (mmax, rows, columns) each, one order at a
        time (only one order's rows are copied at once) and, once R is square, in place."""
        parts = blocks if reduced is None else [reduced, *blocks]
        mmax, columns = parts[0].shape[0], parts[0].shape[2]
        rows = min(sum(part.shape[1] for part in parts), columns)
        if reduced is None or reduced.shape[1] != rows:
            reduced = parts[0].new_empty(mmax, rows, columns)
        for order in range(mmax):
            reduced[order] = torch.linalg.qr(torch.cat([part[order] for part in parts]), mode="r").R
        return reduced

    def step(self, features: torch.Tensor) -> torch.Tensor:
        """One hour ahead in feature space: (mmax, batch, CL + 1) -> the same."""
        stepped = torch.bmm(features, self.matrices)
        return torch.cat([stepped, features[..., -1:]], dim=2)

    def to_grid(self, features: torch.Tensor) -> torch.Tensor:
        """(mmax, batch, CL + 1) -> (batch, C, nlat, nlon) float64."""
        coefficients = features[..., :-1].reshape(self.mmax, -1, self.channels, self.lmax).permute(1, 2, 3, 0)
        return self.isht(coefficients)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.to_grid(self.step(self.features(state))).to(state.dtype)

    def rollout_error(self, trajectories: torch.Tensor) -> torch.Tensor:
        """Relative L2 error per lead and channel, (steps - 1, C), of rollouts from the first state of each of
        ``trajectories`` (num, steps, C, nlat, nlon), averaged over them.

        Computed on the coefficients: with orthonormal transforms the L2 norm on the sphere is the coefficients'
        norm (Parseval; order m > 0 counts twice, for its conjugate), equal to the area-weighted grid norm of
        `models.metrics.relative_l2` for fields inside the band.
        """
        weight = torch.full((self.mmax, 1, 1, 1), 2.0, dtype=torch.float64, device=trajectories.device)
        weight[0] = 1.0

        def energy(features: torch.Tensor) -> torch.Tensor:  # (mmax, batch, CL + 1) -> (batch, C)
            squares = features[..., :-1].abs().square().reshape(self.mmax, -1, self.channels, self.lmax)
            return (weight * squares).sum(dim=(0, 3))

        state = self.features(trajectories[:, 0])
        errors = []
        for lead in range(1, trajectories.shape[1]):
            state = self.step(state)
            truth = self.features(trajectories[:, lead])
            errors.append((energy(state - truth) / energy(truth)).sqrt().mean(dim=0))
        return torch.stack(errors)
