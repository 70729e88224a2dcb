"""Errors on the sphere against values known in closed form."""

import json
import math

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader
from torch_harmonics import InverseRealSHT, RealSHT
from torch_harmonics.quadrature import clenshaw_curtiss_weights

from data import CHANNELS
from data.baselines import Persistence
from data.datamodule import EpochSampler
from evaluation.run_report import write_run_report
from evaluation.test_errors import load_test_errors
from models import NeuralOperatorModule
from models.metrics import (
    METRICS,
    Metric,
    angular_power_spectrum,
    area_mean,
    area_weights,
    mean_with_standard_error,
    relative_l2,
    rmse,
    spectrum_transform,
    squared_l2_loss,
)
from models.module import interleave_shards
from models.rollout_diagnostics import MAX_EXAMPLE_FRAMES, example_frame_hours
from tests.test_run_folders import assert_physics_summaries_are_the_means_of_test_physics

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


def test_test_stage_without_a_data_module_has_no_baselines():
    module = shift_module(test_rollout_steps=3)
    module.std.fill_(2.0)
    state = sine_of_latitude().expand(4, 1, 3, NLAT, NLON)
    batch = torch.cat([state, state + 1, state + 2, state + 3], dim=1)  # the truth rises by 1 an hour
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, dataloaders=DataLoader([batch], batch_size=None))
    results = module.test_results
    assert results["forecasts"] == ["model"], "baselines come from the data module only"
    assert results["lead_hours"] == [1, 2, 3]
    # The model (+0.5 an hour) misses by 0.5, 1, 1.5 normalised units; std 2 doubles the RMSE in physical units.
    rmse_errors = results["errors"]["rmse"]
    assert rmse_errors.shape == (1, 4, 3, 3)  # forecasts, trajectories, channels, leads
    np.testing.assert_allclose(rmse_errors[0, :, 0], [[1.0, 2.0, 3.0]] * 4, rtol=1e-5)
    value, standard_error = METRICS["rmse"].summary(rmse_errors[0])
    np.testing.assert_allclose(value[0], [1.0, 2.0, 3.0], rtol=1e-5)
    assert standard_error is None and value.shape == (3, 3), "RMSE: no standard error, no mean over channels"


def test_multistep_loss_averages_over_the_rollout():
    state = torch.zeros(2, 1, 3, NLAT, NLON)
    batch = torch.cat([state, state + 1, state + 2], dim=1)  # the truth rises by 1 an hour; Shift by 0.5
    one_step = shift_module(rollout_steps=1)
    two_steps = shift_module(rollout_steps=2)
    assert math.isclose(one_step.training_step(batch, 0).item(), 0.25, rel_tol=1e-5)
    assert math.isclose(two_steps.training_step(batch, 0).item(), (0.25 + 1.0) / 2, rel_tol=1e-5)


class Climatology(torch.nn.Module):
    """A baseline that predicts the same state whatever the input (the data's mean state: zero, normalised)."""

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(state)


class Damping(torch.nn.Module):
    """A baseline with a parameter, as the fitted linear emulator has: it must stay out of the model's state."""

    def __init__(self) -> None:
        super().__init__()
        self.factor = torch.nn.Parameter(torch.tensor(0.9))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.factor * state


class TinyData(LightningDataModule):
    """Test trajectories and baselines, as ShallowWaterDataModule offers them."""

    def __init__(self, trajectories: torch.Tensor) -> None:
        super().__init__()
        self.trajectories = trajectories
        self.mean = self.std = None
        persistence = Persistence(NLAT, NLON, "equiangular", lmax=11)
        self.baselines = {"persistence": persistence, "climatology": Climatology(), "linear": Damping()}

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.trajectories, batch_size=3)  # 7 trajectories: batches of 3, 3 and 1


def truth_trajectories(count: int = 7, steps: int = 4) -> torch.Tensor:
    """States that decay at a rate of their own per trajectory, so that per-trajectory errors differ."""
    generator = torch.Generator().manual_seed(0)
    initial = torch.randn(count, 3, NLAT, NLON, generator=generator)
    rates = torch.rand(count, 1, 1, 1, generator=generator)
    return torch.stack([initial * (1 - 0.2 * rates) ** hour for hour in range(steps + 1)], dim=1)


@pytest.fixture(scope="module")
def tested_module() -> tuple[NeuralOperatorModule, torch.Tensor]:
    """One test stage of the Shift model against three baselines, shared by the tests below."""
    trajectories = truth_trajectories()
    module = shift_module(test_rollout_steps=3, example_leads=[2])
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, datamodule=TinyData(trajectories), verbose=False)
    return module, trajectories


def numpy_errors(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-trajectory area-weighted relative L2 written out in numpy: (trajectories, steps, channels)."""
    weights = area_weights(NLAT, NLON).numpy().astype(np.float64)
    error = ((prediction - target) ** 2 * weights).sum(axis=(-2, -1))
    return np.sqrt(error / (target**2 * weights).sum(axis=(-2, -1)))


def test_test_stage_keeps_every_trajectorys_errors_in_order(tested_module):
    module, trajectories = tested_module
    truth = trajectories.numpy().astype(np.float64)
    initial, targets = truth[:, :1], truth[:, 1:4]
    hours = np.arange(1, 4).reshape(1, 3, 1, 1, 1)
    predictions = {
        "model": initial + 0.5 * hours,
        "persistence": np.broadcast_to(initial, targets.shape),
        "climatology": np.zeros_like(targets),
        "linear": initial * 0.9**hours,
    }
    results = module.test_results
    assert results["forecasts"] == ["model", "persistence", "climatology", "linear"]
    errors = results["errors"]["rel_l2"]
    assert errors.dtype == np.float64 and errors.shape == (4, 7, 3, 3)  # forecasts, trajectories, channels, leads
    for index, (name, prediction) in enumerate(predictions.items()):
        expected = numpy_errors(prediction, targets).transpose(0, 2, 1)  # (7, channels, leads), split order
        np.testing.assert_allclose(errors[index], expected, rtol=1e-5, err_msg=name)
        # The channel mean per trajectory, then its spread: not a combination of the per-channel standard errors.
        expected = np.concatenate([expected, expected.mean(axis=1, keepdims=True)], axis=1)
        value, standard_error = METRICS["rel_l2"].summary(errors[index])
        np.testing.assert_allclose(value, expected.mean(axis=0), rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(standard_error, expected.std(axis=0, ddof=1) / np.sqrt(7), rtol=1e-4, err_msg=name)
    assert np.abs(errors[2] - 1).max() < 1e-6, "zero prediction: every trajectory's error is 1"


@pytest.mark.parametrize(("total", "ranks"), [(7, 2), (7, 3), (6, 3), (2, 4)])
def test_shards_of_the_test_split_interleave_back_into_split_order(total, ranks):
    """The inverse of the data module's round-robin deal of test trajectories over ranks, padding included."""
    samplers = [EpochSampler(total, shuffle=False, rank=rank, world_size=ranks) for rank in range(ranks)]
    shares = [[trajectory for trajectory, _ in sampler] for sampler in samplers]  # (trajectory, window start)
    largest = max(len(share) for share in shares)
    shards = torch.full((ranks, 2, largest, 1), -1.0)  # two forecasts; padding -1
    for rank, share in enumerate(shares):
        shards[rank, :, : len(share), 0] = torch.tensor(share, dtype=torch.float32)
    ordered = interleave_shards(shards, sum(len(share) for share in shares))
    assert ordered[..., 0].tolist() == [list(range(total))] * 2


def test_baselines_stay_out_of_the_checkpoint(tested_module):
    module, _ = tested_module
    assert not any("factor" in key for key in module.state_dict()), "the linear baseline's parameter leaked"
    assert sum(parameter.numel() for parameter in module.parameters()) == 0  # Shift has no parameters


def test_test_stage_keeps_power_spectra_and_the_whole_example_rollout(tested_module):
    module, trajectories = tested_module
    results = module.test_results
    spectrum = results["power_spectrum"]
    assert spectrum["lead_hours"] == [2]
    assert spectrum["target"].shape == spectrum["prediction"].shape == (1, 3, 17)  # leads, channels, degrees 0-16
    sht = spectrum_transform(NLAT, NLON)
    expected = angular_power_spectrum(trajectories[:, 2], sht).double().mean(dim=0)
    torch.testing.assert_close(spectrum["target"][0], expected, rtol=1e-5, atol=1e-9)
    example = results["example"]
    assert example["frame_hours"] == [1, 2, 3], "a short rollout keeps every lead"
    assert example["target"].shape == example["prediction"].shape == (3, 3, NLAT, NLON)
    torch.testing.assert_close(example["target"], trajectories[0, 1:4])


def test_the_example_rollout_keeps_the_map_leads_and_a_bounded_number_of_frames():
    hours = example_frame_hours(500, [1, 5, 10, 20])
    assert {1, 5, 10, 20, 500} <= set(hours) and len(hours) <= MAX_EXAMPLE_FRAMES + 4
    assert hours == sorted(set(hours))
    spacing = np.diff([hour for hour in hours if hour > 20])
    assert spacing.max() - spacing.min() <= 1, "evenly spaced"
    assert example_frame_hours(30, [1, 5, 10, 20, 50]) == list(range(1, 31)), "every hour; map leads past the end go"


def test_a_ten_hour_test_keeps_only_the_example_frames_and_reports_the_authors_metric_at_their_lead(
    monkeypatch, tmp_path
):
    monkeypatch.setattr("models.module.example_frame_hours", lambda steps, leads: example_frame_hours(steps, leads, 2))
    trajectories = truth_trajectories(count=3, steps=10)
    module = shift_module(test_rollout_steps=10, example_leads=[3])
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, datamodule=TinyData(trajectories), verbose=False)
    example = module.test_results["example"]
    assert example["frame_hours"] == [1, 3, 10] and example["lead_hours"] == [3]
    assert example["target"].shape == example["prediction"].shape == (3, 3, NLAT, NLON)
    torch.testing.assert_close(example["target"], trajectories[0, [1, 3, 10]])
    hours = torch.tensor([1.0, 3, 10]).reshape(3, 1, 1, 1)
    torch.testing.assert_close(example["prediction"], trajectories[0, 0] + 0.5 * hours)
    write_run_report(module.test_results, list(CHANNELS), {}, tmp_path)
    record = json.loads((tmp_path / "test_metrics.json").read_text())
    assert record["authors_pooled_rel_l2"]["lead_hours"] == [10], "their 10-h lead; 30 h lies past the rollout"
    assert_physics_summaries_are_the_means_of_test_physics(tmp_path)


def test_test_physics_holds_every_trajectorys_diagnostics_and_the_json_their_means(tested_module, tmp_path):
    module, trajectories = tested_module
    physics = module.test_results["physics"]
    assert physics["invariants"].shape == (5, 7, 3, 4)  # truth and four forecasts, trajectories, invariants, hours 0-3
    assert physics["latitude_band_rel_l2"].shape == (4, 7, 3, 6, 3)  # forecasts, trajectories, channels, bands, leads
    assert physics["moments"].shape == (5, 7, 3, 3, 2) and physics["authors_pooled_rel_l2"].shape == (4, 7, 3)
    np.testing.assert_array_equal(
        physics["invariants"][:, :, :, 0], np.broadcast_to(physics["invariants"][0, :, :, 0], (5, 7, 3))
    )
    area_means = physics["moments"][0, :, :, :, 0]  # the truth's, (trajectory, channel, lead)
    weights = area_weights(NLAT, NLON).double()
    np.testing.assert_allclose(
        area_means, area_mean(trajectories[:, 1:4].double(), weights).permute(0, 2, 1), rtol=1e-6, atol=1e-9
    )
    write_run_report(module.test_results, list(CHANNELS), {}, tmp_path)
    assert_physics_summaries_are_the_means_of_test_physics(tmp_path)


def test_power_spectrum_of_a_single_harmonic_sits_at_its_degree():
    sht = spectrum_transform(NLAT, NLON)
    synthesis = InverseRealSHT(NLAT, NLON, lmax=sht.lmax, mmax=sht.mmax)
    weights = area_weights(NLAT, NLON)
    for degree, order in [(0, 0), (3, 0), (5, 2), (12, 7), (16, 16)]:
        coefficients = torch.zeros(sht.lmax, sht.mmax, dtype=torch.complex64)
        coefficients[degree, order] = 1.0
        field = synthesis(coefficients)
        spectrum = angular_power_spectrum(field, sht)
        assert spectrum.argmax().item() == degree
        assert spectrum[degree] / spectrum.sum() > 0.9999
        # Area-correct: the energy over all degrees is the area mean of the field's square.
        assert math.isclose(spectrum.sum().item(), area_mean(field**2, weights).item(), rel_tol=1e-4)


def test_power_spectrum_of_band_limited_data_is_clean_to_the_last_degree():
    """Beyond the resolved degrees the transform's quadrature errors would show as energy the truth does not have."""
    full = RealSHT(NLAT, NLON)
    coefficients = torch.zeros(3, full.lmax, full.mmax, dtype=torch.complex128)
    coefficients[:, :11, :11] = torch.randn(3, 11, 11, dtype=torch.complex128).tril()  # the solver's band, l < 11
    coefficients[:, :, 0] = coefficients[:, :, 0].real
    field = InverseRealSHT(NLAT, NLON, lmax=full.lmax, mmax=full.mmax).double()(coefficients)
    resolved = angular_power_spectrum(field, spectrum_transform(NLAT, NLON).double())
    assert resolved[:, 11:].max() < 1e-12 * resolved.max()
    spurious = angular_power_spectrum(field, full.double())
    assert spurious[:, 11:].max() > 1e-9 * spurious.max(), "the full transform shows spurious energy there"


def largest_error(forecast: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A metric declared by this test only: the largest absolute error on the grid."""
    return (forecast - target).abs().amax(dim=(-2, -1))


def test_a_metric_declared_once_reaches_the_test_step_npz_json_and_plots(tmp_path, monkeypatch):
    metric = Metric("largest_error", largest_error, mean_with_standard_error, label="largest |error|")
    monkeypatch.setitem(METRICS, metric.name, metric)
    module = shift_module(test_rollout_steps=2, example_leads=[1])
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, datamodule=TinyData(truth_trajectories(count=3, steps=2)), verbose=False)

    plots = write_run_report(module.test_results, list(CHANNELS), {}, tmp_path)

    values = load_test_errors(tmp_path).metrics["largest_error"]
    assert values.shape == (4, 3, 3, 2)  # forecasts, trajectories, channels, leads
    truth = truth_trajectories(count=3, steps=2)[:, 1:].numpy()  # climatology (zero) misses by the truth itself
    np.testing.assert_allclose(values[2], np.abs(truth).max(axis=(-2, -1)).transpose(0, 2, 1), rtol=1e-6)
    record = json.loads((tmp_path / "test_metrics.json").read_text())
    np.testing.assert_allclose(record["largest_error"]["model"]["mean"], values[0].mean(axis=(0, 1)), rtol=1e-12)
    assert list(record["largest_error_se"]["linear"]) == [*CHANNELS, "mean"]
    assert plots["rollout_largest_error"].is_file()
