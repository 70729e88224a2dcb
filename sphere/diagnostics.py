"""Physical diagnostics of shallow-water states on the sphere, and error measures that split or pool the channels.

States are grid fields in physical units, shape (..., 3, nlat, nlon): geopotential phi = g h [m^2 s^-2], relative
vorticity zeta and divergence delta [s^-1], as the data files hold them (data.CHANNELS). Everything that depends on
the equations (the radius, the rotation rate, the Coriolis parameter, the wind from vorticity and divergence) comes
from torch-harmonics' own ``ShallowWaterSolver``, the solver that made the data, so that a diagnostic of the truth is
the solver's own.
"""

import torch
from torch_harmonics.examples import ShallowWaterSolver
from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights, lobatto_weights

from sphere import INVARIANTS

__all__ = [
    "AUTHORS_LEAD_HOURS",
    "INVARIANTS",
    "Invariants",
    "band_edges",
    "energy_fraction_above",
    "latitude_band_relative_l2",
    "pooled_relative_l2",
]

# The leads, in hours, at which torch-harmonics' shallow-water example reports `pooled_relative_l2`: its
# autoregressive_inference(..., autoreg_steps=10) with one-hour steps (dt = 3600 s) in examples/train_sfno.py of
# v0.6.0 to v0.7.3 (v0.6.0, June 2023, saves to paper_figures/), autoreg_steps=30 in v0.7.4. One of its steps is
# one of our leads. From v0.8.0 (installed here) the example reports other metrics (absolute, normalised, one step).
AUTHORS_LEAD_HOURS = (10, 30)

_NODES = {  # grid name -> torch-harmonics quadrature: (nodes cos(colatitude) on [-1, 1], weights)
    "equiangular": clenshaw_curtiss_weights,
    "legendre-gauss": legendre_gauss_weights,
    "lobatto": lobatto_weights,
}


class Invariants(torch.nn.Module):
    """Mass, total energy and potential enstrophy of shallow-water states, each as an area mean over the sphere.

    With phi = g h, the shallow-water equations without forcing or dissipation conserve (per unit area, divided by g
    to stay in the data's units):

    - mass: the area mean of phi. Its tendency is minus a divergence, -div(phi u), whose global integral vanishes;
      the solver's spectral scheme keeps the degree-0 coefficient of phi exactly (its tendency is multiplied by the
      Laplacian's eigenvalue 0), so the truth keeps it to rounding.
    - total energy: the area mean of (phi |u|^2 + phi^2) / 2 = g (h |u|^2 + g h^2) / 2, kinetic plus potential
      energy. Most of it is the potential energy of the mean geopotential, mass^2 / 2, constant with the mass, so
      its relative drifts look small: energy - mass^2 / 2 (kinetic plus the anomaly's potential energy) is the part
      that can change.
    - potential enstrophy: the area mean of (zeta + f)^2 / (2 phi) = phi q^2 / 2 with the potential vorticity
      q = (zeta + f) / phi and f = 2 Omega sin(latitude), the solver's Coriolis parameter.

    The solver's hyperdiffusion damps vorticity and divergence at every step (torch-harmonics' ``hyperdiff``), so it
    dissipates energy and potential enstrophy, most at the grid's highest degrees; it leaves mass alone. A forecast
    that gains either, or moves the mass, is unphysical whatever its error.

    The wind (u, v) comes from (zeta, delta) exactly as the solver's ``getuv`` gets it: the states' vorticity and
    divergence are transformed with the solver's ``RealSHT`` (its band, ``lmax`` = ``mmax`` = data.lmax), then its
    inverse vector transform of the stream function and velocity potential (``invlap``, ``radius``). phi and zeta
    enter the products as the grid gives them. Everything is computed in float64 whatever the input's precision.
    """

    def __init__(self, nlat: int, nlon: int, grid: str = "equiangular", lmax: int | None = None) -> None:
        super().__init__()
        # dt only sets the solver's hyperdiffusion factor, which no diagnostic uses
        self.solver = ShallowWaterSolver(nlat, nlon, dt=1.0, lmax=lmax, mmax=lmax, grid=grid).double()
        weights = self.solver.quad_weights / (self.solver.quad_weights.sum() * nlon)  # (nlat, 1), sums to 1/nlon
        self.register_buffer("area_weights", weights, persistent=False)

    def wind(self, states: torch.Tensor) -> torch.Tensor:
        """(..., 3, nlat, nlon) -> (u, v) of shape (..., 2, nlat, nlon), float64: the solver's ``getuv`` of the
        transformed vorticity and divergence."""
        vorticity_divergence = self.solver.grid2spec(states[..., 1:, :, :].double())  # (..., 2, lmax, mmax)
        return self.solver.getuv(vorticity_divergence)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """(..., 3, nlat, nlon) -> (..., 3) float64: mass, energy, potential enstrophy (the order of `INVARIANTS`)."""
        fields = states.double()
        phi, vorticity = fields[..., 0, :, :], fields[..., 1, :, :]  # (..., nlat, nlon)
        speed_squared = self.wind(fields).square().sum(dim=-3)  # (..., nlat, nlon)
        densities = torch.stack(
            [
                phi,
                0.5 * (phi * speed_squared + phi.square()),
                (vorticity + self.solver.coriolis).square() / (2 * phi),
            ],
            dim=-3,
        )  # (..., 3, nlat, nlon)
        return (densities * self.area_weights).sum(dim=(-2, -1))


def _absolute_latitudes(nlat: int, grid: str) -> torch.Tensor:
    """|latitude| in degrees of each grid row, (nlat,) float64, rounded to 1e-9 degree so rows on a band edge (the
    equator, 30 degrees) fall on it."""
    nodes, _ = _NODES[grid](nlat, -1, 1)  # cos(colatitude) = sin(latitude)
    return torch.round(torch.rad2deg(torch.arcsin(nodes.double().abs())), decimals=9)


def band_edges(nlat: int, bands: int = 6, grid: str = "equiangular") -> list[tuple[float, float]]:
    """The |latitude| ranges, in degrees, of ``bands`` equal bands from the poles to the equator: band 0 is the
    polar caps (75 to 90 degrees for six bands), the last the tropics (0 to 15). Each band takes both hemispheres.

    A row belongs to the band with low <= |latitude| < high; the poles (90) to band 0. Raises ValueError if a band
    holds no row of the ``nlat``-row ``grid``: its error would be undefined.
    """
    width = 90.0 / bands
    edges = [(90.0 - width * (band + 1), 90.0 - width * band) for band in range(bands)]
    empty = [band for band, rows in enumerate(_band_rows(nlat, edges, grid)) if not rows.any()]
    if empty:
        raise ValueError(f"latitude bands {empty} of {bands} hold no row of the {nlat}-row {grid} grid: use fewer")
    return edges


def _band_rows(nlat: int, edges: list[tuple[float, float]], grid: str) -> torch.Tensor:
    """(bands, nlat) bool: which rows each band holds (see `band_edges`)."""
    latitude = _absolute_latitudes(nlat, grid)
    return torch.stack([(latitude >= low) & ((latitude < high) | (high >= 90.0)) for low, high in edges])


def latitude_band_relative_l2(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, bands: int = 6, grid: str = "equiangular"
) -> torch.Tensor:
    """The area-weighted relative L2 error within each latitude band of `band_edges`, per channel:
    (..., channel, nlat, nlon) -> (..., channel, band).

    Within band b, sqrt(sum_b w (prediction - target)^2 / sum_b w target^2) over its rows of both hemispheres, with
    ``weights`` (nlat, 1) the grid's area weights (models.metrics.area_weights). The global relative L2 is the bands'
    combination sqrt(sum_b n_b e_b^2 / sum_b n_b), n_b = sum_b w target^2 the target's energy in band b: a planar
    model that errs at the poles shows it in band 0 where the global number, dominated by the larger low latitudes,
    hides it.
    """
    nlat = prediction.shape[-2]
    error = ((prediction - target).square() * weights).sum(dim=-1)  # (..., channel, nlat): each row's share
    norm = (target.square() * weights).sum(dim=-1)
    rows = _band_rows(nlat, band_edges(nlat, bands, grid), grid).to(device=error.device, dtype=error.dtype)
    return (error @ rows.T / (norm @ rows.T)).sqrt()  # rows.T (nlat, band)


def energy_fraction_above(spectrum: torch.Tensor, degree: int) -> torch.Tensor:
    """The fraction of a power spectrum (..., degrees) at degrees >= ``degree``: (...).

    With ``degree`` the data's band edge (data.lmax), the truth's fraction is rounding: the solver keeps no degree
    above it, so a forecast's fraction there is energy it made up at scales the data never has. Pass spectra of
    normalised fields (models.metrics.angular_power_spectrum): in physical units the geopotential's mean, at degree 0,
    makes every fraction vanish.
    """
    return spectrum[..., degree:].sum(-1) / spectrum.sum(-1)


def pooled_relative_l2(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """torch-harmonics' own metric of its shallow-water example, so that our numbers stand beside the authors':
    (..., channel, nlat, nlon) -> (...).

    ``l2loss_sphere(solver, prd, tar, relative=True)`` of examples/train_sfno.py (torch-harmonics v0.6.0 to v0.7.4),
    which its ``autoregressive_inference`` reports per random initial condition (20, 50 in v0.7.4), as mean and std,
    at `AUTHORS_LEAD_HOURS`: sqrt(sum_c int (prd - tar)^2 / sum_c int tar^2), the area integrals (the solver's
    ``integrate_grid``) summed over the three channels before the ratio, in physical units (it de-normalises the
    prediction first). v0.6.0 to v0.6.2 report that root (``squared=False``); from v0.6.3 the default is
    ``squared=True``, so later versions report its square. Pooled in physical units, it is the geopotential's error
    relative to the whole geopotential, mean (about 1e5 m^2 s^-2) included: vorticity and divergence (1e-5 s^-1)
    do not count, and the number is small. Their data differ from ours: 256x512 (181x360 Legendre-Gauss in v0.7.4),
    torch-harmonics' own draw (our data.amplitude=1) and no spin-up. ``weights`` (nlat, 1) are any area weights
    (their normalisation cancels); the input's precision is kept, as theirs.
    """
    error = ((prediction - target).square() * weights).sum(dim=(-3, -2, -1))
    norm = (target.square() * weights).sum(dim=(-3, -2, -1))
    return (error / norm).sqrt()
