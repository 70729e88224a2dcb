"""neuraloperator's spherical convolution with its transforms and its contraction done as real matrix products.

neuraloperator's `SphericalConv` takes its transforms from a handle (``sht_handle``, methods ``sht`` and ``isht``)
that builds torch-harmonics' `RealSHT` / `InverseRealSHT`. Those run a full real FFT over the longitudes, then the
Legendre contraction as an ``einsum`` that copies strided views, and their backward passes pad the spectrum and
run complex FFTs; between them, a complex ``einsum`` mixes the channels. A band-limited SFNO keeps few orders (11
of 33 at 32x64), so here each transform is two matrix products built from torch-harmonics' own weights, as the
app's solver does (both build their Fourier matrix in `sphere/fourier.py`):

    grid (..., nlat, nlon) -> Fourier matrix over the longitudes -> one Legendre matrix per order
        -> spectrum (mmax, real/imag, rows, lmax), real

The grid-sized operand of each product is read in the memory layout it comes in (a transposed operand costs a
matrix product nothing), so no grid-sized tensor is copied, also in the backward pass. `MatmulSphericalConv`
keeps the spectrum real and order-first from analysis to synthesis and mixes the channels with one real batched
matrix product per degree; only these small spectral tensors are rearranged. `channel_major` is the same
convolution for networks that keep their activations channels first (models/fno.py). The numbers are those of
neuraloperator's convolution on torch-harmonics' transforms up to float32 rounding.
"""

import torch
from neuralop.layers.spherical_convolution import SphericalConv
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

from models.precision import register_spectral
from sphere.fourier import fourier_matrix


class Analysis(nn.Module):
    """torch-harmonics' `RealSHT` as two matrix products: (rows, nlat, nlon) -> (mmax, 2, rows, lmax), the real and
    imaginary parts of the coefficients of degree l < lmax and order m < mmax, order first."""

    def __init__(self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str, norm: str) -> None:
        super().__init__()
        self.register_buffer("fourier", fourier_matrix(nlon, mmax, inverse=False).float(), persistent=False)
        weights = RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid, norm=norm).weights  # (mmax, lmax, nlat)
        self.register_buffer("legendre", weights.transpose(1, 2).float(), persistent=False)  # (mmax, nlat, lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, nlat, nlon = x.shape
        mmax, _, lmax = self.legendre.shape
        # (mmax * 2, nlon) @ (nlon, rows * nlat): the grid is read transposed, in place
        coefficients = self.fourier @ x.reshape(-1, nlon).transpose(0, 1)  # (mmax * 2, rows * nlat)
        spectrum = torch.bmm(coefficients.view(mmax, -1, nlat), self.legendre)  # (mmax, 2 * rows, lmax)
        return spectrum.view(mmax, 2, rows, lmax)


class Synthesis(nn.Module):
    """torch-harmonics' `InverseRealSHT` as two matrix products: `Analysis`'s (mmax, 2, rows, lmax) -> (rows, nlat,
    nlon)."""

    def __init__(self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str, norm: str) -> None:
        super().__init__()
        self.register_buffer("fourier", fourier_matrix(nlon, mmax, inverse=True).float(), persistent=False)
        legendre = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid, norm=norm).pct  # (mmax, lmax, nlat)
        self.register_buffer("legendre", legendre.float(), persistent=False)

    def forward(self, spectrum: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``add`` (rows, nlat, nlon), if given, is added by the last matrix product: no separate pass over the grid."""
        mmax, _, rows, lmax = spectrum.shape
        nlat, nlon = self.legendre.shape[-1], self.fourier.shape[-1]
        values = torch.bmm(spectrum.reshape(mmax, -1, lmax), self.legendre)  # (mmax, 2 * rows, nlat)
        # (rows * nlat, mmax * 2) @ (mmax * 2, nlon): the Fourier coefficients are read transposed, in place
        coefficients = values.view(2 * mmax, -1).transpose(0, 1)
        if add is None:
            grid = coefficients @ self.fourier
        else:
            grid = torch.addmm(add.reshape(-1, nlon).to(values.dtype), coefficients, self.fourier)
        return grid.view(rows, nlat, nlon)


class MatmulSHT(nn.Module):
    """neuraloperator's transform handle (`neuralop.layers.spherical_convolution.SHT`) with `Analysis` and
    `Synthesis` in place of torch-harmonics' transforms: the same arguments and results, the same caching by shape."""

    def __init__(self, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> None:
        super().__init__()
        if dtype != torch.float32:
            raise ValueError(f"the matrix-product transforms run in float32, not {dtype}")
        self.analyses = nn.ModuleDict()
        self.syntheses = nn.ModuleDict()

    def analysis(self, nlat: int, nlon: int, lmax: int, mmax: int, norm: str, grid: str, device) -> Analysis:
        key = f"{nlat}_{nlon}_{lmax}_{mmax}_{norm}_{grid}"
        if key not in self.analyses:
            self.analyses[key] = Analysis(nlat, nlon, lmax, mmax, grid, norm).to(device)
        return self.analyses[key]

    def synthesis(self, nlat: int, nlon: int, lmax: int, mmax: int, norm: str, grid: str, device) -> Synthesis:
        key = f"{nlat}_{nlon}_{lmax}_{mmax}_{norm}_{grid}"
        if key not in self.syntheses:
            self.syntheses[key] = Synthesis(nlat, nlon, lmax, mmax, grid, norm).to(device)
        return self.syntheses[key]

    def sht(self, x: torch.Tensor, s=None, norm: str = "ortho", grid: str = "equiangular") -> torch.Tensor:
        """(..., nlat, nlon) real -> (..., lmax, mmax) complex, as `RealSHT`."""
        *leading, nlat, nlon = x.shape
        lmax, mmax = s if s is not None else (nlat, nlat // 2 if grid == "equiangular" else nlat)
        spectrum = self.analysis(nlat, nlon, lmax, mmax, norm, grid, x.device)(x.reshape(-1, nlat, nlon))
        spectrum = spectrum.view(mmax, 2, *leading, lmax).movedim((0, 1), (-2, -1))  # (..., lmax, mmax, 2)
        return torch.view_as_complex(spectrum.contiguous())

    def isht(self, x: torch.Tensor, s=None, norm: str = "ortho", grid: str = "equiangular") -> torch.Tensor:
        """(..., lmax, mmax) complex -> (..., nlat, nlon) real, as `InverseRealSHT`."""
        *leading, lmax, mmax = x.shape
        nlat, nlon = s if s is not None else (lmax, 2 * mmax if grid == "equiangular" else mmax)
        spectrum = torch.view_as_real(x).movedim((-3, -2, -1), (-1, 0, 1)).reshape(mmax, 2, -1, lmax)
        return self.synthesis(nlat, nlon, lmax, mmax, norm, grid, x.device)(spectrum).view(*leading, nlat, nlon)


@register_spectral("forward", "channel_major")
class MatmulSphericalConv(SphericalConv):
    """neuraloperator's `SphericalConv` (same arguments, weights and state dict) on `MatmulSHT`'s transforms, with
    the spectrum kept real from analysis to synthesis. Separable weights are not supported."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.separable:
            raise ValueError("MatmulSphericalConv does not support separable=True: use neuraloperator's SphericalConv")
        self.sht_handle = MatmulSHT(dtype=self.dtype, device=self.device)

    def forward(self, x: torch.Tensor, output_shape: tuple[int, int] | None = None) -> torch.Tensor:
        """neuraloperator's `SphericalConv.forward`: (batch, in, nlat, nlon) -> (batch, out, height, width)."""
        batch, _, nlat, nlon = x.shape
        height, width = nlat, nlon
        if self.resolution_scaling_factor is not None and output_shape is None:
            height, width = (
                round(nlat * self.resolution_scaling_factor[0]),
                round(nlon * self.resolution_scaling_factor[1]),
            )
        elif output_shape is not None:
            height, width = output_shape[0], output_shape[1]
        lmax, mmax = self.n_modes[0], self.n_modes[1] // 2
        handle, (norm, (grid_in, grid_out)) = self.sht_handle, (self.sht_norm, self.sht_grids)
        spectrum = handle.analysis(nlat, nlon, lmax, mmax, norm, grid_in, x.device)(x.reshape(-1, nlat, nlon))
        spectrum = self.contract(spectrum.view(mmax, 2, batch, -1, lmax))  # (mmax, 2, batch, out, lmax)
        synthesis = handle.synthesis(height, width, lmax, mmax, norm, grid_out, x.device)
        y = synthesis(spectrum.reshape(mmax, 2, -1, lmax)).view(batch, -1, height, width)
        return y if self.bias is None else y + self.bias

    def channel_major(self, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        """``add`` plus this convolution of ``x`` without its bias, both channel-major (channels first, then the
        batch): x (in, batch, nlat, nlon), add (out, batch, nlat, nlon) -> (out, batch, nlat, nlon), at the input's
        resolution. The synthesis's last matrix product adds ``add``: a caller folds the bias and its skip
        connection into it (models/fno.py)."""
        channels, batch, nlat, nlon = x.shape
        lmax, mmax = self.n_modes[0], self.n_modes[1] // 2
        handle, (norm, (grid_in, grid_out)) = self.sht_handle, (self.sht_norm, self.sht_grids)
        spectrum = handle.analysis(nlat, nlon, lmax, mmax, norm, grid_in, x.device)(x.reshape(-1, nlat, nlon))
        spectrum = self.contract(spectrum.view(mmax, 2, channels, batch, lmax).transpose(2, 3))
        synthesis = handle.synthesis(nlat, nlon, lmax, mmax, norm, grid_out, x.device)
        return synthesis(spectrum.transpose(2, 3).reshape(mmax, 2, -1, lmax), add).view(-1, batch, nlat, nlon)

    def contract(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The complex channel mixing per degree l, out[o] = sum_i x[i] w[i, o, l], as one real batched matrix
        product over the degrees: (mmax, 2, batch, in, lmax) -> (mmax, 2, batch, out, lmax)."""
        mmax, _, batch, channels, lmax = spectrum.shape
        weight = self.weight.to_tensor()[:, :, :lmax]  # (in, out, lmax) complex, any factorization
        real, imag = weight.real.permute(2, 0, 1), weight.imag.permute(2, 0, 1)  # (lmax, in, out)
        # rows (real/imag in, in), columns (real/imag out, out): [[re, im], [-im, re]]
        blocks = torch.cat([torch.cat([real, imag], dim=2), torch.cat([-imag, real], dim=2)], dim=1)
        parts = spectrum.permute(4, 0, 2, 1, 3).reshape(lmax, mmax * batch, 2 * channels)  # (lmax, mmax batch, 2 in)
        mixed = torch.bmm(parts, blocks).view(lmax, mmax, batch, 2, -1)  # (lmax, mmax, batch, 2, out)
        return mixed.permute(1, 3, 2, 4, 0)  # a view: the caller copies it once, into the layout it needs
