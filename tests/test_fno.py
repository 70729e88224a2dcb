"""The channel-major FNO and SFNO (models/fno.py) against neuraloperator's own networks and layers, same weights."""

import pytest
import torch
from neuralop.layers.spherical_convolution import SphericalConv
from neuralop.models import FNO, SFNO
from torch import nn

from models.fno import ChannelMajorFNO, ChannelMajorSFNO
from models.precision import register_spectral, spectral_in_float32
from models.spherical import MatmulSphericalConv
from runs.build import build_module
from tests.conftest import compose_config

SIZE = {"in_channels": 4, "out_channels": 3, "hidden_channels": 8, "n_layers": 3}


def assert_same_outputs_and_gradients(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    """Equal to float32 rounding, relative to the largest value of each output and gradient."""
    outputs = [net(x) for net in (ours, theirs)]
    assert outputs[0].shape == outputs[1].shape and outputs[0].is_contiguous()
    scale = outputs[1].abs().max()
    torch.testing.assert_close(outputs[0] / scale, outputs[1] / scale, rtol=0, atol=2e-6)
    weights = torch.randn_like(outputs[1])
    for output in outputs:
        (output * weights).sum().backward()
    for (name, mine), other in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        scale = other.grad.abs().max()
        torch.testing.assert_close(mine.grad / scale, other.grad / scale, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("ours", "theirs", "settings"),
    [
        # the default SFNO against neuraloperator's SFNO on its own (torch-harmonics') transforms
        (ChannelMajorSFNO, SFNO, {"n_modes": [6, 12], "positional_embedding": None}),
        # neuraloperator's defaults: its grid embedding; a soft-gating and an identity skip
        (ChannelMajorSFNO, SFNO, {"n_modes": [6, 12], "fno_skip": "soft-gating", "channel_mlp_skip": "identity"}),
        (ChannelMajorSFNO, SFNO, {"n_modes": [6, 12], "fno_skip": None, "channel_mlp_skip": "linear"}),
        (ChannelMajorFNO, FNO, {"n_modes": [8, 8], "positional_embedding": None}),  # the FFT convolution, transposed
        (ChannelMajorFNO, FNO, {"n_modes": [8, 8], "lifting_channel_ratio": 0, "channel_mlp_skip": None}),
    ],
)
def test_outputs_and_gradients_match_neuraloperators_network(ours, theirs, settings):
    torch.manual_seed(0)
    mine = ours(**SIZE, **settings)
    other = theirs(**SIZE, **settings)
    if theirs is SFNO:
        assert all(type(conv) is SphericalConv for conv in other.fno_blocks.convs), "neuraloperator's own layers"
    other.load_state_dict(mine.state_dict())
    assert_same_outputs_and_gradients(mine, other, torch.randn(3, 4, 16, 32))


def test_a_neuraloperator_state_dict_loads_and_gives_the_same_network():
    torch.manual_seed(0)
    theirs = SFNO(n_modes=[6, 12], **SIZE)
    state = theirs.state_dict()
    assert "_metadata" in state, "neuraloperator's own format, with its constructor arguments"
    ours = ChannelMajorSFNO(n_modes=[6, 12], **SIZE)
    ours.load_state_dict(state)
    x = torch.randn(2, 4, 16, 32)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=2e-6 * theirs(x).abs().max().item())


def test_the_default_models_are_channel_major():
    for model, network in (("sfno", ChannelMajorSFNO), ("fno", ChannelMajorFNO)):
        net = build_module(compose_config([f"model={model}", "model.width=8", "model.layers=1"])).net.net
        assert type(net) is network
    convs = build_module(compose_config(["model.width=8"])).net.net.fno_blocks.convs
    assert all(type(conv) is MatmulSphericalConv for conv in convs)


@pytest.mark.parametrize(
    "settings", [{"norm": "group_norm"}, {"preactivation": True}, {"channel_mlp_dropout": 0.1}, {"domain_padding": 0.1}]
)
def test_options_this_forward_does_not_compute_stop_at_construction(settings):
    with pytest.raises(ValueError, match=f"does not support.*{next(iter(settings))}"):
        ChannelMajorSFNO(n_modes=[6, 12], **SIZE, **settings)


def test_spectral_layers_declare_themselves_to_the_precision_wrapper():
    @register_spectral("forward", "transform")
    class Declared(nn.Module):
        def forward(self, x):
            return self.transform(x)

        def transform(self, x):
            return x * 2 if torch.is_autocast_enabled("cpu") else x.double()

    class Subclass(Declared):
        pass

    class Undeclared(Declared.__mro__[1]):  # nn.Module: not spectral
        def forward(self, x):
            return x

    net = spectral_in_float32(nn.Sequential(Subclass(), Undeclared()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net[0].transform(torch.ones(2)).dtype == torch.float64, "declared methods run with autocast off"
    assert net[1].forward.__func__ is Undeclared.forward
