"""The SFNO's matrix-product transforms (models/spherical.py) against neuraloperator's own, torch-harmonics'."""

import pytest
import torch
from neuralop.layers.spherical_convolution import SHT, SphericalConv

from models import NeuralOperatorModule
from models.spherical import MatmulSHT, MatmulSphericalConv
from runs.build import build_module
from tests.conftest import TINY_SFNO, compose_config, fit_tiny_module

# float32 rounding, relative to the largest value: both sides sum tens of products in float32
TOLERANCE = {"rtol": 0, "atol": 2e-6}


@pytest.mark.parametrize(
    ("nlat", "nlon", "lmax", "mmax", "grid"),
    [
        (32, 64, 11, 11, "equiangular"),  # the default SFNO's band at 32x64
        (32, 64, 32, 32, "equiangular"),  # the modes the SFNO had before it was band-limited
        (32, 64, 16, 33, "equiangular"),  # every order up to nlon / 2, the last with its imaginary part ignored
        (16, 32, 8, 9, "legendre-gauss"),
        (17, 36, 5, 7, "lobatto"),
    ],
)
def test_transforms_match_torch_harmonics(nlat, nlon, lmax, mmax, grid):
    torch.manual_seed(0)
    x = torch.randn(2, 3, nlat, nlon, dtype=torch.float64).float()
    theirs, ours = SHT(), MatmulSHT()
    expected = theirs.sht(x, s=(lmax, mmax), grid=grid)
    spectrum = ours.sht(x, s=(lmax, mmax), grid=grid)
    assert spectrum.shape == expected.shape and spectrum.dtype == torch.complex64
    scale = expected.abs().max()
    torch.testing.assert_close(spectrum / scale, expected / scale, **TOLERANCE)
    coefficients = torch.randn(2, 3, lmax, mmax, dtype=torch.complex64)
    expected = theirs.isht(coefficients, s=(nlat, nlon), grid=grid)
    scale = expected.abs().max()
    torch.testing.assert_close(
        ours.isht(coefficients, s=(nlat, nlon), grid=grid) / scale, expected / scale, **TOLERANCE
    )


@pytest.mark.parametrize(
    ("settings", "output_shape"),
    [
        ({"factorization": "dense"}, None),  # as neuraloperator's SFNO builds it
        ({}, (16, 32)),  # neuraloperator's default, a CP-factorized weight; a coarser output grid
        ({"sht_grids": ["legendre-gauss", "equiangular"], "bias": False}, (20, 40)),
    ],
)
def test_convolution_matches_neuraloperators(settings, output_shape):
    torch.manual_seed(0)
    ours = MatmulSphericalConv(5, 6, [7, 12], **settings)
    theirs = SphericalConv(5, 6, [7, 12], **settings)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 18, 36)
    outputs = [conv(x, output_shape=output_shape) for conv in (ours, theirs)]
    assert outputs[0].shape == outputs[1].shape == (3, 6, *(output_shape or (18, 36)))
    scale = outputs[1].abs().max()
    torch.testing.assert_close(outputs[0] / scale, outputs[1] / scale, rtol=0, atol=2e-6)


def test_default_sfno_matches_neuraloperators_transforms_in_outputs_and_gradients():
    """The default SFNO on the matrix-product transforms against the same network and weights on torch-harmonics'."""
    ours = build_module(compose_config(["model.width=8", "model.layers=2"])).net
    convs = [layer for layer in ours.modules() if isinstance(layer, SphericalConv)]
    assert convs and all(type(layer) is MatmulSphericalConv for layer in convs), "the default uses ours"
    theirs = build_module(
        compose_config(
            [
                "model.width=8",
                "model.layers=2",
                "model.net.conv_module._target_=neuralop.layers.spherical_convolution.SphericalConv",
            ]
        )
    ).net
    assert all(type(layer) is SphericalConv for layer in theirs.modules() if isinstance(layer, SphericalConv))
    weights = ours.state_dict()
    weights.pop("_metadata")  # neuraloperator's constructor arguments, which name the convolution's class
    theirs.load_state_dict(weights)  # the same parameter names and shapes
    state = torch.randn(4, 3, 32, 64)
    outputs = [net(state) for net in (ours, theirs)]
    scale = outputs[1].abs().max()
    torch.testing.assert_close(outputs[0] / scale, outputs[1] / scale, rtol=0, atol=1e-5)
    for output in outputs:
        output.square().mean().backward()
    for (name, mine), other in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        scale = other.grad.abs().max()
        torch.testing.assert_close(mine.grad / scale, other.grad / scale, rtol=0, atol=1e-4, msg=name)


def test_a_checkpoint_of_an_sfno_on_these_transforms_loads_alone(tmp_path):
    trained, trainer = fit_tiny_module(TINY_SFNO, tmp_path)
    loaded = NeuralOperatorModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert any(type(layer) is MatmulSphericalConv for layer in loaded.modules())
    state = torch.randn(2, 3, 8, 16)
    torch.testing.assert_close(loaded(state), trained(state))
