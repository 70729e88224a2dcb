"""A batched version of torch-harmonics' shallow-water solver.

torch-harmonics integrates one state at a time (it indexes channels as
``uspec[0]`` / ``uspec[1:]``). Indexing channels as ``[..., c, :, :]`` runs the
very same spectral scheme on a whole batch of states at once, which is what
makes generating a data set fast.
"""

import torch
from torch_harmonics.examples import ShallowWaterSolver

ADAMS_BASHFORTH_3 = (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0)


class BatchedShallowWaterSolver(ShallowWaterSolver):
    """``ShallowWaterSolver`` whose states carry leading batch dimensions.

    Spectral states have shape (..., 3, lmax, mmax) (geopotential, vorticity,
    divergence); grid states have shape (..., 3, nlat, nlon).
    """

    def dudtspec(self, uspec: torch.Tensor) -> torch.Tensor:
        """torch-harmonics' tendencies, batched; also skips its unused divergence grid and
        transforms both flux fields in one vector SHT (the same numbers, fewer transforms)."""
        dudtspec = torch.zeros_like(uspec)
        ugrid = self.spec2grid(uspec[..., :2, :, :])  # (..., 2, nlat, nlon): geopotential, vorticity
        uvgrid = self.getuv(uspec[..., 1:, :, :])  # (..., 2, nlat, nlon): u, v

        fluxes = torch.stack(
            [uvgrid * (ugrid[..., 1:2, :, :] + self.coriolis), uvgrid * ugrid[..., 0:1, :, :]], dim=-4
        )  # (..., 2, 2, nlat, nlon): absolute-vorticity flux, geopotential flux
        tmpspec = self.vrtdivspec(fluxes)  # (..., 2, 2, lmax, mmax)
        dudtspec[..., 2, :, :] = tmpspec[..., 0, 0, :, :]
        dudtspec[..., 1, :, :] = -tmpspec[..., 0, 1, :, :]
        dudtspec[..., 0, :, :] = -tmpspec[..., 1, 1, :, :]

        kinetic = 0.5 * (uvgrid[..., 0, :, :] ** 2 + uvgrid[..., 1, :, :] ** 2)
        tmpspec = self.grid2spec(ugrid[..., 0, :, :] + kinetic)
        dudtspec[..., 2, :, :] = dudtspec[..., 2, :, :] - self.lap * tmpspec
        return dudtspec

    def random_initial_condition(self, num: int, mach: float, generator: torch.Generator) -> torch.Tensor:
        """``num`` random states drawn as torch-harmonics draws one, from ``generator``."""
        ctype = torch.complex128 if self.lap.dtype == torch.float64 else torch.complex64
        llimit = mlimit = 120
        shape = (num, 3, min(llimit, self.lmax), min(mlimit, self.mmax))
        noise = torch.randn(shape, dtype=ctype, generator=generator).to(self.lap.device)
        uspec = torch.zeros(num, 3, self.lmax, self.mmax, dtype=ctype, device=self.lap.device)
        uspec[..., : shape[2], : shape[3]] = (4 * torch.pi / llimit / (llimit + 1)) ** 0.5 * noise
        uspec[:, 0] = self.gravity * self.hamp * uspec[:, 0]
        uspec[:, 0, 0, 0] += (4 * torch.pi) ** 0.5 * self.havg * self.gravity
        uspec[:, 1:] = mach * uspec[:, 1:] * torch.sqrt(self.gravity * self.havg) / self.radius
        return torch.tril(uspec)

    def integrate(self, uspec: torch.Tensor, nsteps: int, save_every: int) -> torch.Tensor:
        """Integrate ``nsteps`` solver steps, returning every ``save_every``-th state.

        One uninterrupted Adams-Bashforth run (torch-harmonics' ``timestep``
        restarts it with an Euler step on every call). Returns spectral states of
        shape (..., nsteps // save_every, 3, lmax, mmax).
        """
        saved = []
        d_new = d_now = d_old = None
        for step in range(nsteps):
            d_new = self.dudtspec(uspec)
            if step == 0:
                d_now = d_old = d_new
            elif step == 1:
                d_old = d_new
            a_new, a_now, a_old = ADAMS_BASHFORTH_3
            uspec = uspec + self.dt * (a_new * d_new + a_now * d_now + a_old * d_old)
            uspec[..., 1:, :, :] = self.hyperdiff * uspec[..., 1:, :, :]
            d_old, d_now = d_now, d_new
            if (step + 1) % save_every == 0:
                saved.append(uspec)
        return torch.stack(saved, dim=-4)
