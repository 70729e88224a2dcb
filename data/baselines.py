"""The forecasts a referee asks a learned model to beat, built from the training split alone.

Each baseline is a one-hour stepper on normalised states, (batch, 3, nlat, nlon) -> (batch, 3, nlat, nlon), so a
test rolls it out exactly as it rolls out a model:

- persistence: no change;
- climatology: the training split's mean state, whatever the input;
- linear: the least-squares linear spectral emulator. The shallow-water equations linearised around rest are
  zonally symmetric, so each zonal wavenumber m evolves on its own: one complex matrix per m, acting on every
  (channel, degree l) coefficient at that m, is the exact form of the linearised one-hour map. Fitted to the
  training split's consecutive states, it captures all the linear dynamics (gravity and Rossby waves, Coriolis,
  hyperdiffusion), so what a model gains over it is the nonlinear part.
"""

from collections.abc import Iterable

import torch
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

BASELINES = ("persistence", "climatology", "linear")


class Persistence(nn.Module):
    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return state


class Climatology(nn.Module):
    """Predicts the training mean state, shape (3, nlat, nlon)."""

    def __init__(self, mean_state: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean_state", mean_state.float())

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mean_state.expand_as(state)


class LinearSpectralEmulator(nn.Module):
    """x(t + 1 h) = A_m x(t) per zonal wavenumber m, on spherical-harmonic coefficients of degree and order < lmax.

    ``matrices`` has shape (mmax, 3 * lmax + 1, 3 * lmax) complex: row 3 * lmax is a constant term, which only
    order 0 needs (the normalisation shifts each channel's global mean, an l = m = 0 coefficient).
    """

    def __init__(self, nlat: int, nlon: int, grid: str, lmax: int, matrices: torch.Tensor | None = None) -> None:
        super().__init__()
        self.lmax = self.mmax = lmax
        # float64 transforms: the fit must resolve a nonlinear part of a fraction of a percent
        self.sht = RealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid).double()
        self.isht = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid).double()
        if matrices is None:
            matrices = torch.zeros(lmax, 3 * lmax + 1, 3 * lmax, dtype=torch.complex128)
        self.register_buffer("matrices", matrices.to(torch.complex128))

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """(batch, 3, nlat, nlon) -> (mmax, batch, 3 * lmax + 1) complex128: coefficients per order, and a 1."""
        coefficients = self.sht(states.to(torch.float64))  # (batch, 3, lmax, mmax)
        batch = len(states)
        per_order = coefficients.permute(3, 0, 1, 2).reshape(self.mmax, batch, 3 * self.lmax)
        ones = per_order.new_ones(self.mmax, batch, 1)
        return torch.cat([per_order, ones], dim=2)

    def fit(self, trajectories: Iterable[torch.Tensor]) -> "LinearSpectralEmulator":
        """Least squares over every pair of consecutive states of ``trajectories``, chunks of shape
        (num, steps, 3, nlat, nlon); returns self.

        The pairs are folded, a block at a time, into the R factor of a QR decomposition of [inputs | targets], so
        that memory does not grow with their number: with X = QR, Q's columns orthonormal, least squares on R's rows
        is least squares on all pairs, and so is its minimum-norm solution.
        """
        unknowns = 3 * self.lmax + 1
        reduced = None  # (mmax, rows <= 6L + 1, 6L + 1): the R factor of the pairs folded so far
        pending, pending_rows, pairs = [], 0, 0
        for chunk in trajectories:
            features = self.features(chunk.flatten(0, 1)).unflatten(1, chunk.shape[:2])  # (mmax, num, steps, 3L+1)
            inputs = features[:, :, :-1].flatten(1, 2)  # (mmax, pairs, 3L + 1)
            targets = features[:, :, 1:, :-1].flatten(1, 2)  # (mmax, pairs, 3L)
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
        """One hour ahead in feature space: (mmax, batch, 3L + 1) -> the same."""
        stepped = torch.bmm(features, self.matrices)
        return torch.cat([stepped, features[..., -1:]], dim=2)

    def to_grid(self, features: torch.Tensor) -> torch.Tensor:
        """(mmax, batch, 3L + 1) -> (batch, 3, nlat, nlon) float64."""
        coefficients = features[..., :-1].reshape(self.mmax, -1, 3, self.lmax).permute(1, 2, 3, 0)
        return self.isht(coefficients)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.to_grid(self.step(self.features(state))).to(state.dtype)

    def rollout_error(self, trajectories: torch.Tensor) -> torch.Tensor:
        """Relative L2 error per lead and channel, (steps - 1, 3), of rollouts from the first state of each of
        ``trajectories`` (num, steps, 3, nlat, nlon), averaged over them.

        Computed on the coefficients: with orthonormal transforms the L2 norm on the sphere is the coefficients'
        norm (Parseval; order m > 0 counts twice, for its conjugate), equal to the area-weighted grid norm of
        `models.metrics.relative_l2` for fields inside the band.
        """
        weight = torch.full((self.mmax, 1, 1, 1), 2.0, dtype=torch.float64, device=trajectories.device)
        weight[0] = 1.0

        def energy(features: torch.Tensor) -> torch.Tensor:  # (mmax, batch, 3L + 1) -> (batch, 3)
            squares = features[..., :-1].abs().square().reshape(self.mmax, -1, 3, self.lmax)
            return (weight * squares).sum(dim=(0, 3))

        state = self.features(trajectories[:, 0])
        errors = []
        for lead in range(1, trajectories.shape[1]):
            state = self.step(state)
            truth = self.features(trajectories[:, lead])
            errors.append((energy(state - truth) / energy(truth)).sqrt().mean(dim=0))
        return torch.stack(errors)
