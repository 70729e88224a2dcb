"""The longitudinal Fourier transform of a spherical-harmonic transform as one real matrix: the data's solver
(data/solver.py) and the SFNO's matrix-product transforms (models/spherical.py) both build theirs here."""

import math

import torch


def fourier_matrix(nlon: int, mmax: int, inverse: bool) -> torch.Tensor:
    """(mmax * 2, nlon) float64, rows ordered (order, real/imag) for orders 0..mmax-1, as torch-harmonics scales them.

    Forward: longitude values -> coefficients, ``2 pi * rfft(norm="forward")``. Inverse: coefficients -> values,
    ``irfft(n=nlon, norm="forward")``, where orders 0 and nlon/2 count once and their imaginary parts are ignored.
    """
    if mmax > nlon // 2 + 1:
        raise ValueError(f"mmax={mmax} orders need nlon >= {2 * (mmax - 1)} longitudes, not {nlon}")
    order = torch.arange(mmax, dtype=torch.float64)[:, None]
    angle = order * (2 * math.pi / nlon) * torch.arange(nlon)[None, :]
    once = (order == 0) | (2 * order == nlon)
    if inverse:
        weight, sine = torch.where(once, 1.0, 2.0), torch.where(once, 0.0, torch.sin(angle))
    else:
        weight, sine = torch.full_like(order, 2 * math.pi / nlon), torch.sin(angle)
    return torch.stack([weight * torch.cos(angle), -weight * sine], dim=1).reshape(2 * mmax, nlon)
