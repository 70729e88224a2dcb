"""neuraloperator's FNO and SFNO, computed channel-major: the same networks, the same parameters, a faster step.

neuraloperator runs every pointwise layer (lifting, projection, the channel MLPs and the skip connections; 70% of the
SFNO's training FLOPs) as a 1x1 `Conv1d` on (batch, channels, points) tensors. Here the activations are one
(channels, batch * nlat * nlon) matrix from the lifting to the projection, so each pointwise layer is one matrix
product with all grid points as columns, and the biases, skip connections and spectral convolution are added by
the products themselves (``addmm``) instead of in passes of their own. The spectral transforms of
`MatmulSphericalConv` read this layout as it is (`MatmulSphericalConv.channel_major`); other spectral convolutions
(the FNO's FFT convolution) see a transposed view. Only the input and output change layout.

`ChannelMajorFNO` and `ChannelMajorSFNO` subclass `neuralop.models.FNO` and `SFNO`: the same constructor,
submodules, parameter names and state dict (a neuraloperator checkpoint loads), only ``forward`` differs. It covers
neuraloperator's architecture as the app configures it; options that change the block's arithmetic (norms,
pre-activation, a stabilizer, domain padding, resolution scaling, complex data, channel-MLP dropout) are refused
at construction.
"""

import torch
from neuralop.layers.skip_connections import Flattened1dConv, SoftGating
from neuralop.models import FNO, SFNO
from torch import nn

from models.spherical import MatmulSphericalConv


class ChannelMajorForward:
    """neuraloperator's FNO forward (post-activation blocks) on channel-major activations."""

    def check_supported(self) -> None:
        """Stop at construction on an option that this forward does not compute."""
        blocks = self.fno_blocks
        options = {
            "norm": blocks.norm is not None,
            "preactivation": self.preactivation,
            "stabilizer": blocks.stabilizer is not None,
            "domain_padding": self.domain_padding is not None,
            "resolution_scaling_factor": self.resolution_scaling_factor is not None,
            "complex_data": self.complex_data,
            "channel_mlp_dropout": bool(blocks.channel_mlp_dropout),
            "use_channel_mlp=False": not blocks.use_channel_mlp,
            "sht_grids with two grids": any(len(set(getattr(conv, "sht_grids", ()))) > 1 for conv in blocks.convs),
        }
        unsupported = [name for name, used in options.items() if used]
        if unsupported:
            raise ValueError(f"{type(self).__name__} does not support {unsupported}: use neuraloperator's class")

    def forward(self, x: torch.Tensor, output_shape: None = None) -> torch.Tensor:
        """(batch, in_channels, nlat, nlon) -> (batch, out_channels, nlat, nlon), as neuraloperator's ``forward``."""
        if output_shape is not None:
            raise ValueError(f"{type(self).__name__} keeps the input's resolution: output_shape is not supported")
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        batch, channels, nlat, nlon = x.shape
        x = x.transpose(0, 1).reshape(channels, -1)  # (channels, batch * nlat * nlon)
        x = channel_mlp(self.lifting, x)
        for index in range(self.n_layers):
            x = self.block(index, x, (batch, nlat, nlon))
        x = channel_mlp(self.projection, x)
        return x.view(-1, batch, nlat, nlon).transpose(0, 1).contiguous()

    def block(self, index: int, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """FNO block ``index`` (`neuralop.layers.fno_block.FNOBlocks.forward_with_postactivation`) on (channels,
        points): act(mlp(act(conv(x) + skip(x))) + mlp_skip(x)), without the activations after the last block."""
        blocks = self.fno_blocks
        conv, mlp = blocks.convs[index], blocks.channel_mlp[index]
        last = index == self.n_layers - 1
        mlp_skips = blocks.channel_mlp_skips
        # the channel MLP's skip, with its last layer's bias, computed before x is replaced
        mlp_add = pointwise(None if mlp_skips is None else mlp_skips[index], x, mlp.fcs[-1].bias)
        fno_skip = None if blocks.fno_skips is None else blocks.fno_skips[index]
        spatial = x.view(-1, *grid)
        if isinstance(conv, MatmulSphericalConv):
            add = pointwise(fno_skip, x, conv.bias)
            if add is None or add.shape[1] != x.shape[1]:  # no skip connection: zeros, or the bias on every point
                zeros = torch.zeros(conv.out_channels, x.shape[1], dtype=x.dtype, device=x.device)
                add = zeros if add is None else zeros + add
            x = conv.channel_major(spatial, add.view(-1, *grid))
        else:
            add = pointwise(fno_skip, x, None)
            x = conv(spatial.transpose(0, 1)).transpose(0, 1)  # neuraloperator's layout: (batch, channels, ...)
            x = x if add is None else x + add.view(-1, *grid)
        x = x.reshape(conv.out_channels, -1)
        if not last:
            x = blocks.non_linearity(x)
        x = channel_mlp(mlp, x, last_add=mlp_add)
        return x if last else blocks.non_linearity(x)


def pointwise(skip: nn.Module | None, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """neuraloperator's skip connection ``skip`` (linear, soft-gating, identity or None) of channel-major ``x``,
    plus ``bias`` (per output channel), as one operation where it can be; None where both are None."""
    if isinstance(skip, Flattened1dConv):
        bias = column_sum(bias, skip.conv.bias)
        weight = skip.conv.weight[:, :, 0]
        return weight @ x if bias is None else torch.addmm(bias, weight, x)
    if isinstance(skip, SoftGating):
        bias, gate = column_sum(bias, skip.bias), skip.weight.view(-1, 1)
        return x * gate if bias is None else torch.addcmul(bias, gate, x)
    bias = column_sum(bias, None)
    if isinstance(skip, nn.Identity):
        return x if bias is None else x + bias
    if skip is None:
        return bias
    raise ValueError(f"skip connection {type(skip).__name__} is not one of neuraloperator's")


def column_sum(*biases: torch.Tensor | None) -> torch.Tensor | None:
    """The sum of per-channel biases of any shape (None for absent ones) as one (channels, 1) column."""
    present = [bias.reshape(-1, 1) for bias in biases if bias is not None]
    return sum(present[1:], present[0]) if present else None


def channel_mlp(mlp: nn.Module, x: torch.Tensor, last_add: torch.Tensor | None = None) -> torch.Tensor:
    """neuraloperator's `ChannelMLP` (1x1 convolutions and the activation between them) on channel-major ``x``.
    ``last_add``, if given, replaces the last layer's bias: the caller has folded that bias into it."""
    for index, layer in enumerate(mlp.fcs):
        weight = layer.weight[:, :, 0]
        last = index == len(mlp.fcs) - 1
        add = last_add if last and last_add is not None else layer.bias
        x = weight @ x if add is None else torch.addmm(add.view(len(weight), -1), weight, x)
        if not last:
            x = mlp.non_linearity(x)
    return x


class ChannelMajorFNO(ChannelMajorForward, FNO, name="ChannelMajorFNO"):
    """`neuralop.models.FNO` (same arguments and state dict) with the channel-major forward."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_supported()


class ChannelMajorSFNO(ChannelMajorForward, SFNO, name="ChannelMajorSFNO"):
    """`neuralop.models.SFNO` (same arguments and state dict) with the channel-major forward; its convolution
    defaults to `MatmulSphericalConv`."""

    def __init__(self, *args, conv_module: type[nn.Module] = MatmulSphericalConv, **kwargs) -> None:
        super().__init__(*args, conv_module=conv_module, **kwargs)
        self.check_supported()
