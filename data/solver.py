"""A batched, matrix-multiply version of torch-harmonics' shallow-water solver.

torch-harmonics integrates one state at a time (it indexes channels as
``uspec[0]`` / ``uspec[1:]``) and spends most of each step copying strided
views inside ``einsum``. This solver runs the very same spectral scheme on a
whole batch of states, with every linear part of a time step folded into four
dense matrix products:

    spectral state -> (Legendre) -> Fourier coefficients -> (Fourier) -> grid
    grid products  -> (Fourier)  -> Fourier coefficients -> (Legendre) -> tendencies

The matrices are built from torch-harmonics' own transform weights, so the
numbers are those of ``ShallowWaterSolver.timestep`` up to rounding.

Its hyperdiffusion (`hyperdiffusion`) may be torch-harmonics' own, tied to the grid's highest degree, or that of
another band: the same damping rate per degree on every grid (docs/data.md).
"""

from collections.abc import Iterator

import torch
from torch_harmonics.examples import ShallowWaterSolver

from sphere.fourier import fourier_matrix

ADAMS_BASHFORTH_3 = (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0)
# torch-harmonics' hyperdiffusion: the band's highest degree e-folds in this time, a degree l of a band whose highest
# degree is L in this time x (L(L+1) / l(l+1))^ORDER.
HYPERDIFFUSION_EFOLD_SECONDS = 2 * 3600.0
HYPERDIFFUSION_ORDER = 4


def hyperdiffusion(lap: torch.Tensor, dt: float, band: int, radius: torch.Tensor) -> torch.Tensor:
    """The factor that one solver step of ``dt`` seconds multiplies vorticity and divergence by, per (degree, order),
    shape of ``lap`` (lmax, mmax): exp(-dt / EFOLD x (l(l+1) / L(L+1))^ORDER), L = ``band`` - 1 the highest degree of
    the band whose damping it applies.

    torch-harmonics' ``ShallowWaterSolver`` builds it as exp(-dt / 2 h x (lap / lap[-1, 0])^4) with its own band:
    ``band`` = its lmax gives that tensor bit for bit (the reference Laplacian eigenvalue is computed as it computes
    ``lap``). The rate per second, (l(l+1) / L(L+1))^ORDER / EFOLD, depends on the degree and the band alone, not on
    the grid or the step: a finer grid given a coarser ``band`` damps each degree the coarse grid keeps at the coarse
    grid's rate, and its further degrees by the same formula.
    """
    highest = torch.tensor(band - 1, dtype=torch.float64, device=lap.device)
    reference = -highest * (highest + 1) / radius**2  # lap[-1, 0] of a solver whose lmax is ``band``
    return torch.exp(torch.asarray((-dt / HYPERDIFFUSION_EFOLD_SECONDS) * (lap / reference) ** HYPERDIFFUSION_ORDER))


class BatchedShallowWaterSolver(ShallowWaterSolver):
    """``ShallowWaterSolver`` whose states carry a leading batch dimension.

    Spectral states have shape (batch, 3, lmax, mmax) complex (geopotential,
    vorticity, divergence); grid states (batch, 3, nlat, nlon). Inside
    ``integrate`` a state is packed as real numbers of shape
    (mmax, lmax, 6, batch): per order m and degree l, the (real, imaginary)
    parts of the three fields, so that each Legendre transform is one batched
    matrix product over m.

    ``hyperdiffusion_lmax`` is the band whose damping rate per degree the solver applies (`hyperdiffusion`); None:
    its own lmax, torch-harmonics' rule.
    """

    def __init__(self, *args, hyperdiffusion_lmax: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        band = self.lmax if hyperdiffusion_lmax is None else hyperdiffusion_lmax
        self.hyperdiff = hyperdiffusion(self.lap, self.dt, band, self.radius)  # replaces torch-harmonics' buffer
        if 2 * self.mmax > self.nlon:
            raise ValueError(f"mmax={self.mmax} needs nlon >= {2 * self.mmax} longitudes")
        # Legendre synthesis, (mmax, nlat, lmax): geopotential and vorticity; the two vector-transform matrices
        # with the inverse Laplacian that turns vorticity and divergence into wind folded in
        to_wind = (self.invlap / self.radius).T[:, None, :]
        self.register_buffer("legendre", self.isht.pct.transpose(1, 2).contiguous(), persistent=False)
        self.register_buffer("wind0", self.ivsht.dpct[0].transpose(1, 2) * to_wind, persistent=False)
        self.register_buffer("wind1", self.ivsht.dpct[1].transpose(1, 2) * to_wind, persistent=False)
        # Legendre analysis, (mmax, lmax, nlat): vrtdivspec's two matrices (with its lap * radius), grid2spec's
        to_vrtdiv = (self.lap * self.radius).T[:, :, None]
        self.register_buffer("flux0", self.vsht.weights[0] * to_vrtdiv, persistent=False)
        self.register_buffer("flux1", self.vsht.weights[1] * to_vrtdiv, persistent=False)
        self.register_buffer("bernoulli", self.sht.weights * self.lap.T[:, :, None], persistent=False)
        # Fourier synthesis (nlon, mmax * 2) and analysis (mmax * 2, nlon), columns and rows ordered (order, real/imag)
        synthesis = fourier_matrix(self.nlon, self.mmax, inverse=True).T.contiguous()
        self.register_buffer("fourier_synthesis", synthesis, persistent=False)
        self.register_buffer("fourier_analysis", fourier_matrix(self.nlon, self.mmax, inverse=False), persistent=False)
        self.register_buffer("packed_hyperdiff", self.hyperdiff.T[:, :, None, None], persistent=False)
        self.register_buffer("grid_coriolis", self.coriolis[None], persistent=False)  # (1, nlat, 1)

    def pack(self, uspec: torch.Tensor) -> torch.Tensor:
        """(batch, 3, lmax, mmax) complex -> (mmax, lmax, 6, batch) real."""
        parts = torch.view_as_real(uspec)  # (batch, 3, lmax, mmax, 2)
        return parts.permute(3, 2, 1, 4, 0).reshape(self.mmax, self.lmax, 6, len(uspec))

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(mmax, lmax, 6, batch) real -> (batch, 3, lmax, mmax) complex."""
        parts = packed.reshape(self.mmax, self.lmax, 3, 2, -1).permute(4, 2, 1, 0, 3)
        return torch.view_as_complex(parts.contiguous())

    def tendencies(self, packed: torch.Tensor) -> torch.Tensor:
        """torch-harmonics' ``dudtspec`` for a packed batch: (mmax, lmax, 6, batch) -> the same shape.

        Legendre transforms are batched matrix products over the orders m, Fourier transforms one matrix product
        each; the batch stays the last dimension throughout.
        """
        mmax, lmax, _, batch = packed.shape
        nlat, nlon = self.nlat, self.nlon
        # Legendre synthesis -> Fourier coefficients (mmax, real/imag, field, nlat, batch) of phi, vort, u, v
        scalars = torch.bmm(self.legendre, packed[:, :, :4].reshape(mmax, lmax, -1))  # phi, vort (re, im)
        vrtdiv = packed[:, :, 2:].reshape(mmax, lmax, -1)  # vort, div (re, im)
        wind0 = torch.bmm(self.wind0, vrtdiv).reshape(mmax, nlat, 4, batch)
        wind1 = torch.bmm(self.wind1, vrtdiv).reshape(mmax, nlat, 4, batch)
        coeffs = packed.new_empty(mmax, 2, 4, nlat, batch)
        coeffs[:, :, :2] = scalars.reshape(mmax, nlat, 2, 2, batch).permute(0, 3, 2, 1, 4)
        torch.sub(wind0[:, :, 0], wind1[:, :, 3], out=coeffs[:, 0, 2])  # u re
        torch.add(wind0[:, :, 1], wind1[:, :, 2], out=coeffs[:, 1, 2])  # u im
        torch.add(wind1[:, :, 1], wind0[:, :, 2], out=coeffs[:, 0, 3]).neg_()  # v re
        torch.sub(wind1[:, :, 0], wind0[:, :, 3], out=coeffs[:, 1, 3])  # v im
        grid = self.fourier_synthesis @ coeffs.reshape(2 * mmax, -1)  # (nlon, 4 * nlat * batch)
        phi, vorticity, u, v = grid.reshape(nlon, 4, nlat, batch).unbind(1)  # (nlon, nlat, batch) each
        # the nonlinear terms on the grid: (u, v) * absolute vorticity, (u, v) * phi, phi + kinetic energy
        products = grid.new_empty(nlon, 5, nlat, batch)
        absolute_vorticity = vorticity + self.grid_coriolis
        torch.mul(u, absolute_vorticity, out=products[:, 0])
        torch.mul(v, absolute_vorticity, out=products[:, 1])
        torch.mul(u, phi, out=products[:, 2])
        torch.mul(v, phi, out=products[:, 3])
        torch.add(phi, 0.5 * (u * u + v * v), out=products[:, 4])
        # Fourier analysis -> (mmax, nlat, real/imag, product, batch), then Legendre analysis
        coeffs = (self.fourier_analysis @ products.reshape(nlon, -1)).reshape(mmax, 2, 5, nlat, batch)
        coeffs = coeffs.permute(0, 3, 1, 2, 4).contiguous()
        flux0 = torch.bmm(self.flux0, coeffs.reshape(mmax, nlat, -1)).reshape(mmax, lmax, 2, 5, batch)
        flux1 = torch.bmm(self.flux1, coeffs.reshape(mmax, nlat, -1)).reshape(mmax, lmax, 2, 5, batch)
        bernoulli = torch.bmm(self.bernoulli, coeffs[:, :, :, 4].reshape(mmax, nlat, -1)).reshape(mmax, lmax, 2, batch)
        dudt = packed.new_empty(mmax, lmax, 6, batch)
        torch.add(flux1[:, :, 1, 2], flux0[:, :, 0, 3], out=dudt[:, :, 0])  # phi re
        torch.sub(flux0[:, :, 1, 3], flux1[:, :, 0, 2], out=dudt[:, :, 1])  # phi im
        torch.add(flux1[:, :, 1, 0], flux0[:, :, 0, 1], out=dudt[:, :, 2])  # vort re
        torch.sub(flux0[:, :, 1, 1], flux1[:, :, 0, 0], out=dudt[:, :, 3])  # vort im
        torch.sub(flux0[:, :, 0, 0], flux1[:, :, 1, 1], out=dudt[:, :, 4]).sub_(bernoulli[:, :, 0])  # div re
        torch.add(flux0[:, :, 1, 0], flux1[:, :, 0, 1], out=dudt[:, :, 5]).sub_(bernoulli[:, :, 1])  # div im
        return dudt

    def random_initial_condition(
        self, num: int, mach: float, generator: torch.Generator, amplitude: float = 1.0, band: int | None = None
    ) -> torch.Tensor:
        """``num`` random states drawn as torch-harmonics draws one, from ``generator``, with the anomaly (all but
        the mean geopotential) scaled by ``amplitude``: torch-harmonics' draw leaves little energy in the degrees a
        coarse grid keeps, so its dynamics are almost linear there.

        ``band`` (None: the solver's lmax) limits the draw to degrees and orders below it, as a solver of that lmax
        draws: the same generator gives a finer grid the very coefficients a coarser grid of that band gets, and
        leaves its further degrees at rest.
        """
        ctype = torch.complex128 if self.lap.dtype == torch.float64 else torch.complex64
        llimit = mlimit = 120
        if band is not None and not 1 <= band <= self.lmax:
            raise ValueError(f"an initial band of {band} degrees does not fit the solver's {self.lmax}")
        degrees, orders = (self.lmax, self.mmax) if band is None else (band, min(band, self.mmax))
        shape = (num, 3, min(llimit, degrees), min(mlimit, orders))
        noise = torch.randn(shape, dtype=ctype, generator=generator)
        if shape[2:] != (self.lmax, self.mmax):  # degrees beyond the draw (or torch-harmonics' limit) stay at rest
            noise = torch.nn.functional.pad(noise, (0, self.mmax - shape[3], 0, self.lmax - shape[2]))
        # In place, in torch-harmonics' order of operations: a whole split's draw is held at once, and only once.
        uspec = noise.to(self.lap.device)
        uspec.mul_((4 * torch.pi / llimit / (llimit + 1)) ** 0.5)
        uspec[:, 0].mul_(self.gravity * self.hamp)
        uspec[:, 1:].mul_(mach).mul_(torch.sqrt(self.gravity * self.havg)).div_(self.radius)
        uspec.mul_(amplitude)
        uspec[:, 0, 0, 0] += (4 * torch.pi) ** 0.5 * self.havg * self.gravity
        return uspec.tril_()

    def integrate(self, uspec: torch.Tensor, nsteps: int, save_every: int) -> torch.Tensor:
        """Integrate ``nsteps`` solver steps, returning every ``save_every``-th state.

        One uninterrupted Adams-Bashforth run (torch-harmonics' ``timestep``
        restarts it with an Euler step on every call). ``uspec`` has shape
        (batch, 3, lmax, mmax); returns (batch, nsteps // save_every, 3, lmax, mmax).
        """
        return torch.stack(list(self.saved_states(uspec, nsteps, save_every)), dim=1)

    def saved_states(self, uspec: torch.Tensor, nsteps: int, save_every: int) -> Iterator[torch.Tensor]:
        """`integrate`'s states one at a time, (batch, 3, lmax, mmax) each: a long run holds only the scheme's
        state."""
        packed = self.pack(uspec)
        d_new = d_now = d_old = None
        a_new, a_now, a_old = ADAMS_BASHFORTH_3
        for step in range(nsteps):
            d_new = self.tendencies(packed)
            if step == 0:
                d_now = d_old = d_new
            elif step == 1:
                d_old = d_new
            packed = packed + self.dt * (a_new * d_new + a_now * d_now + a_old * d_old)
            packed[:, :, 2:] *= self.packed_hyperdiff
            d_old, d_now = d_now, d_new
            if (step + 1) % save_every == 0:
                yield self.unpack(packed)
