"""A checkpoint tested on a grid twice as fine, with its trained weights and its own normalisation.

Module level (no data generation): tiny SFNO and FNO fitted on 8x16 trajectories, loaded at 16x32. End to end:
`python evaluate.py <tiny run at 32x64> data=64x128 data.hyperdiffusion=fixed`.
"""

import json
import math

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from data import CHANNELS
from evaluate import evaluation_config, other_equation
from evaluation.test_errors import load_test_errors
from models import MODEL, NeuralOperatorModule
from runs.folder import EVAL_CONFIG, EVAL_DIR, METRICS_FILE, SAVED_CONFIG
from tests.conftest import TINY_DATA, TINY_SFNO, compose_config
from tests.test_evaluate import evaluate

TINY_FNO = {
    "_target_": "models.fno.ChannelMajorFNO",
    "n_modes": [8, 8],  # neuraloperator's count: wavenumbers -4..3 over the latitudes, 0..3 over the longitudes
    "in_channels": 4,
    "out_channels": 3,
    "hidden_channels": 8,
    "n_layers": 1,
    "positional_embedding": None,
}
NETS = {"sfno": TINY_SFNO, "fno": TINY_FNO}
TRAINER = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "enable_model_summary": False}


class PhysicalTrajectories(LightningDataModule):
    """Trajectories in physical-like units (a geopotential near 1e5, winds' curls near 1e-5), normalised by their own
    statistics, as `ShallowWaterDataModule` normalises a file's splits by its training split's."""

    def __init__(self, nlat: int, nlon: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        scale = torch.tensor([300.0, 1e-5, 1e-6]).reshape(3, 1, 1)
        offset = torch.tensor([1e5, 0.0, 0.0]).reshape(3, 1, 1)
        physical = offset + scale * torch.randn(4, 4, len(CHANNELS), nlat, nlon, generator=generator).cumsum(dim=1)
        self.mean = physical.mean(dim=(0, 1, 3, 4)).reshape(3, 1, 1)
        self.std = physical.std(dim=(0, 1, 3, 4)).reshape(3, 1, 1)
        self.trajectories = (physical - self.mean) / self.std
        self.baselines = {}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.trajectories, batch_size=2)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.trajectories, batch_size=2)


def fitted(net: dict, tmp_path) -> tuple[NeuralOperatorModule, PhysicalTrajectories, str]:
    """A module fitted for one epoch on 8x16 trajectories, its data and its checkpoint."""
    torch.manual_seed(0)
    module = NeuralOperatorModule(
        net=net,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        scheduler=None,
        channels=list(CHANNELS),
        nlat=8,
        nlon=16,
        test_rollout_steps=3,
        example_leads=[1, 3],
    )
    data = PhysicalTrajectories(8, 16, seed=0)
    trainer = Trainer(max_epochs=1, limit_val_batches=0, enable_checkpointing=False, **TRAINER)
    trainer.fit(module, datamodule=data)
    checkpoint = str(tmp_path / "fitted.ckpt")
    trainer.save_checkpoint(checkpoint)
    return module, data, checkpoint


def model_errors(module: NeuralOperatorModule, data: LightningDataModule) -> np.ndarray:
    """The model's relative L2 per (trajectory, channel, lead) on ``data``'s test trajectories."""
    Trainer(**TRAINER).test(module, datamodule=data, verbose=False)
    return module.test_results["errors"]["rel_l2"][module.test_results["forecasts"].index(MODEL)]


@pytest.mark.parametrize("model", NETS)
def test_a_checkpoint_tests_on_a_grid_twice_as_fine_with_its_own_normalisation(model, tmp_path):
    module, data, checkpoint = fitted(NETS[model], tmp_path)
    trained = {name: value.clone() for name, value in module.state_dict().items() if torch.is_tensor(value)}
    own_grid = model_errors(module, data)

    again = NeuralOperatorModule.load_from_checkpoint(checkpoint, nlat=8, nlon=16)
    np.testing.assert_array_equal(model_errors(again, data), own_grid)  # the path of a cross-grid test, on its own grid

    finer_data = PhysicalTrajectories(16, 32, seed=1)
    finer = NeuralOperatorModule.load_from_checkpoint(checkpoint, nlat=16, nlon=32)
    errors = model_errors(finer, finer_data)
    assert errors.shape == (4, len(CHANNELS), 3) and np.isfinite(errors).all()
    for name, value in trained.items():  # the trained weights, and the trained normalisation
        assert torch.equal(finer.state_dict()[name], value), name
    assert not torch.allclose(finer.std, finer_data.std), "the evaluation data's statistics differ from training's"


@pytest.mark.parametrize("model", NETS)
def test_batches_of_other_statistics_are_converted_into_the_models_units(model, tmp_path):
    """One step from a state normalised by other statistics gives, in physical units, the step from the same state
    normalised by the model's own."""
    module, data, checkpoint = fitted(NETS[model], tmp_path)
    other = NeuralOperatorModule.load_from_checkpoint(checkpoint, nlat=8, nlon=16)
    other.data_mean, other.data_std = data.mean * 1.001 + 0.1 * data.std, data.std * 3
    physical = data.trajectories[:, 0] * data.std + data.mean
    module.data_mean = module.data_std = None  # batches in the model's own units
    with torch.no_grad():
        own = module.to_physical(module((physical - module.mean) / module.std))
        converted = other.to_physical(other((physical - other.data_mean) / other.data_std))
    anomaly = own - own.mean(dim=(-2, -1), keepdim=True)
    difference = (converted - own).norm(dim=(-2, -1)) / anomaly.norm(dim=(-2, -1))
    assert difference.max() < 1e-4, difference


def test_a_run_evaluates_on_the_same_equation_at_twice_its_grid(finished_run):
    """The tiny 32x64 run at 64x128 with the fixed rule: finite errors and the report with its figures; at 32x64
    through the same overrides, the data is the run's own file (the fixed rule at its reference is the default's data)
    and the errors are the run's test errors."""
    tiny = [override for override in TINY_DATA if override.startswith("data.")]
    finer = evaluate(finished_run, "data=64x128", "data.hyperdiffusion=fixed", *tiny, "eval.plots=True")
    assert finer.returncode == 0, finer.stderr[-3000:]
    own = evaluate(finished_run, "data=32x64", "data.hyperdiffusion=fixed", *tiny)
    assert own.returncode == 0, own.stderr[-3000:]
    (finer_folder,) = (finished_run / EVAL_DIR).glob("*_data=64x128_data.hyperdiffusion=fixed_*")
    (own_folder,) = (finished_run / EVAL_DIR).glob("*_data=32x64_data.hyperdiffusion=fixed_*")
    metrics = json.loads((finer_folder / METRICS_FILE).read_text())
    assert all(math.isfinite(value) for value in metrics["rel_l2"][MODEL]["mean"])
    assert (finer_folder / "plots" / "maps.png").is_file()
    assert "nlat: 64" in (finer_folder / EVAL_CONFIG).read_text()
    assert "generated" not in own.stderr and "cache hit" in own.stderr, "the run's own data file"
    run_errors, own_errors = load_test_errors(finished_run), load_test_errors(own_folder)
    np.testing.assert_array_equal(own_errors.of("rel_l2", MODEL), run_errors.of("rel_l2", MODEL))


@pytest.mark.parametrize(
    ("trained", "evaluated", "reference"),
    [
        ([], ["data=64x128"], "32x64"),
        (["data.hyperdiffusion=fixed"], ["data=64x128"], "32x64"),
        (["data=64x128", "data.hyperdiffusion=fixed"], ["data=128x256"], "32x64"),
        (["data=64x128"], ["data=32x64"], "64x128"),
    ],
)
def test_an_evaluation_on_another_equation_says_how_to_test_on_the_runs(trained, evaluated, reference):
    data = compose_config(trained).data
    warning = other_equation(data, compose_config(evaluated).data)
    assert f"another equation; pass data.hyperdiffusion=fixed data.hyperdiffusion_reference={reference}" in warning
    same = compose_config([*evaluated, "data.hyperdiffusion=fixed", f"data.hyperdiffusion_reference={reference}"])
    assert other_equation(data, same.data) is None
    assert other_equation(data, data) is None


def test_a_net_built_for_one_grid_stops_before_another(tmp_path):
    """torch-harmonics' SFNO (model.grid set) cannot run on another grid: the evaluation stops in its config, before
    any folder or data, naming the key; on its own grid it goes on."""
    saved = tmp_path / SAVED_CONFIG
    saved.parent.mkdir()
    saved.write_text(OmegaConf.to_yaml(compose_config(["model=sfno_th"])))
    with pytest.raises(ValueError, match=r"built for the 32x64 grid it was trained on \(model.grid\), not 64x128"):
        evaluation_config(tmp_path, ["data=64x128", "data.hyperdiffusion=fixed"])
    assert evaluation_config(tmp_path, ["eval.rollout_steps=30"]).eval.rollout_steps == 30
    assert list(tmp_path.iterdir()) == [saved.parent]
