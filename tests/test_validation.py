"""Validation measures what the test measures: rollouts from the validation trajectories' first state."""

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from data import CHANNELS
from models import NeuralOperatorModule
from tests.test_metrics import NLAT, NLON, Shift, numpy_errors, shift_module, truth_trajectories

TRAINER = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu"}


class WeightedShift(Shift):
    """Shift with a parameter, so that it can be fitted (at learning rate 0 it stays Shift)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.scale * super().forward(state)


def expected_errors(trajectories: torch.Tensor, leads: int) -> tuple[np.ndarray, np.ndarray]:
    """Shift's (+0.5 an hour) and persistence's errors, (trajectories, leads, channels), written out in numpy."""
    truth = trajectories.numpy().astype(np.float64)
    initial, targets = truth[:, :1], truth[:, 1 : leads + 1]
    hours = np.arange(1, leads + 1).reshape(1, leads, 1, 1, 1)
    return numpy_errors(initial + 0.5 * hours, targets), numpy_errors(np.broadcast_to(initial, targets.shape), targets)


def test_validation_rollout_error_is_the_mean_over_trajectories_leads_and_channels():
    trajectories = truth_trajectories()  # 7 trajectories of 5 states: batches of 3, 3 and 1
    module = shift_module(val_rollout_steps=3, example_leads=[1, 2, 5])
    (metrics,) = Trainer(**TRAINER).validate(module, DataLoader(trajectories, batch_size=3), verbose=False)
    model, persistence = expected_errors(trajectories, 3)
    assert metrics["val/rollout_rel_l2"] == pytest.approx(model.mean(), rel=1e-5)
    assert metrics["val/rollout_rel_l2_persistence"] == pytest.approx(persistence.mean(), rel=1e-5)
    for lead in (1, 2):
        assert metrics[f"val/rollout_rel_l2/{lead}h"] == pytest.approx(model[:, lead - 1].mean(), rel=1e-5)
    assert "val/rollout_rel_l2/5h" not in metrics, "beyond the validation rollout"
    assert metrics["val/rel_l2"] == pytest.approx(model[:, 0].mean(), rel=1e-5), "one-step, as before"


def test_the_sanity_check_does_not_enter_the_first_epochs_validation(tmp_path):
    """Lightning validates one batch before training; the first epoch's rollout error must be over all trajectories
    once (the first batch's errors differ from the mean, so counting it twice would show)."""
    trajectories = truth_trajectories()
    net = {"_target_": f"{WeightedShift.__module__}.{WeightedShift.__qualname__}"}
    optimizer = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.0}
    module = NeuralOperatorModule(net, optimizer, None, NLAT, NLON, list(CHANNELS), val_rollout_steps=3)
    trainer = Trainer(**TRAINER, max_epochs=1, num_sanity_val_steps=1, enable_checkpointing=False)
    trainer.fit(module, DataLoader(trajectories, batch_size=7), DataLoader(trajectories, batch_size=3))
    model, _ = expected_errors(trajectories, 3)
    assert model[:3].mean() != pytest.approx(model.mean(), rel=1e-3)
    assert float(trainer.callback_metrics["val/rollout_rel_l2"]) == pytest.approx(model.mean(), rel=1e-5)
