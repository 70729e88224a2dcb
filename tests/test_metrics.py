"""Errors on the sphere against values known in closed form."""

import math

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader
from torch_harmonics.quadrature import clenshaw_curtiss_weights

from data import CHANNELS
from models import NeuralOperatorModule
from models.metrics import area_mean, area_weights, relative_l2, rmse, squared_l2_loss

NLAT, NLON = 32, 64


def sine_of_latitude() -> torch.Tensor:
    """sin(latitude) on the equiangular grid, shape (nlat, nlon)."""
    nodes, _ = clenshaw_curtiss_weights(NLAT, -1, 1)
    return nodes.float().reshape(NLAT, 1).expand(NLAT, NLON)


def test_weights_integrate_the_sphere():
    weights = area_weights(NLAT, NLON)
    assert math.isclose(area_mean(torch.ones(NLAT, NLON), weights).item(), 1.0, rel_tol=1e-6)


def test_area_weighting_against_a_known_integral():
    """The mean of sin^2(latitude) over the sphere is 1/3; a plain grid mean says about 1/2."""
    field = sine_of_latitude() ** 2
    assert math.isclose(area_mean(field, area_weights(NLAT, NLON)).item(), 1 / 3, rel_tol=1e-5)
    assert field.mean().item() > 0.45


def test_relative_l2_of_a_field_against_itself_its_negative_and_zero():
    field = torch.randn(2, 3, NLAT, NLON)
    weights = area_weights(NLAT, NLON)
    assert torch.allclose(relative_l2(field, field, weights), torch.zeros(2, 3))
    assert torch.allclose(relative_l2(-field, field, weights), torch.full((2, 3), 2.0))
    assert torch.allclose(relative_l2(torch.zeros_like(field), field, weights), torch.ones(2, 3))


def test_rmse_and_loss_of_constant_fields():
    weights = area_weights(NLAT, NLON)
    target = torch.full((1, 3, NLAT, NLON), 5.0)
    prediction = target + torch.tensor([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1)
    assert torch.allclose(rmse(prediction, target, weights), torch.tensor([[1.0, 2.0, 0.5]]))
    assert math.isclose(squared_l2_loss(prediction, target, weights).item(), (1 + 4 + 0.25) / 3, rel_tol=1e-6)


class Shift(torch.nn.Module):
    """A 'network' whose one-hour change is a constant: its rollout error is known."""

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.full_like(state[:, :-1], 0.5)  # the input's last channel is sin(latitude)


def shift_module(**settings) -> NeuralOperatorModule:
    net = {"_target_": f"{Shift.__module__}.{Shift.__qualname__}"}
    optimizer = {"_target_": "torch.optim.Adam", "_partial_": True}
    return NeuralOperatorModule(net, optimizer, None, NLAT, NLON, list(CHANNELS), **settings)


def test_test_stage_reports_model_and_persistence_per_lead():
    module = shift_module(test_rollout_steps=3)
    module.std.fill_(2.0)
    state = sine_of_latitude().expand(4, 1, 3, NLAT, NLON)
    batch = torch.cat([state, state + 1, state + 2, state + 3], dim=1)  # the truth rises by 1 an hour
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, dataloaders=DataLoader([batch], batch_size=None))
    results = module.test_results
    # Persistence misses by 1, 2, 3 normalised units; the model (+0.5 an hour) by 0.5, 1, 1.5; std 2 doubles RMSE.
    assert torch.allclose(results["rmse"]["persistence"][:, 0], torch.tensor([2.0, 4.0, 6.0]))
    assert torch.allclose(results["rmse"]["model"][:, 0], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.all(results["rel_l2"]["model"] < results["rel_l2"]["persistence"])


def test_multistep_loss_averages_over_the_rollout():
    state = torch.zeros(2, 1, 3, NLAT, NLON)
    batch = torch.cat([state, state + 1, state + 2], dim=1)  # the truth rises by 1 an hour; Shift by 0.5
    one_step = shift_module(rollout_steps=1)
    two_steps = shift_module(rollout_steps=2)
    assert math.isclose(one_step.training_step(batch, 0).item(), 0.25, rel_tol=1e-5)
    assert math.isclose(two_steps.training_step(batch, 0).item(), (0.25 + 1.0) / 2, rel_tol=1e-5)
