"""Training learns, its checkpoints reload to what was trained, and every model runs at every resolution."""

import csv
import itertools
import math

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from omegaconf.errors import InterpolationResolutionError

from models import NeuralOperatorModule
from runs.build import build_module
from runs.folder import LAST_CHECKPOINT, METRICS_CSV, METRICS_FILE, PLOTS_DIR
from tests.conftest import REPO, TINY, compose_config
from train import train

# Every preset of the config tree: a new model or resolution is covered without editing this file.
MODELS = sorted(path.stem for path in (REPO / "config" / "model").glob("*.yaml"))
DATA = sorted(path.stem for path in (REPO / "config" / "data").glob("*.yaml"))
EPOCHS = 5


@pytest.mark.parametrize(("model", "data"), list(itertools.product(MODELS, DATA)))
def test_every_model_steps_at_every_resolution(model, data):
    """A forward and backward pass on a random state of the preset's grid: no data to generate, even at 256x512."""
    torch.manual_seed(0)
    cfg = compose_config([f"model={model}", f"data={data}", "model.width=8", "model.layers=1"])
    module = build_module(cfg)
    state = torch.randn(2, len(module.channels), cfg.data.nlat, cfg.data.nlon)
    prediction = module(state)
    assert prediction.shape == state.shape and torch.isfinite(prediction).all()
    (prediction - state).square().mean().backward()
    gradients = {name: parameter.grad for name, parameter in module.named_parameters()}
    assert all(gradient is not None for gradient in gradients.values()), "a parameter is not in the graph"
    assert all(torch.isfinite(gradient).all() for gradient in gradients.values())
    assert any(gradient.abs().sum() > 0 for gradient in gradients.values())


@pytest.fixture(scope="module")
def trained_run(data_root, tmp_path_factory):
    """A run of a few epochs on the tiny data, with its CSV log and checkpoints."""
    run_dir = tmp_path_factory.mktemp("trained")
    overrides = [*TINY, f"training.max_epochs={EPOCHS}", "logger=csv", "trainer.log_every_n_steps=1", "eval.plots=True"]
    overrides.append(f"paths.data_root={data_root}")
    cfg = compose_config(overrides, output_dir=run_dir)
    val_error = train(cfg)
    return cfg, run_dir, val_error


def logged(run_dir, key: str) -> list[float]:
    """The values of ``key`` in the run's metrics.csv, one per row that has it, in order."""
    with (run_dir / METRICS_CSV).open(newline="") as file:
        return [float(row[key]) for row in csv.DictReader(file) if row.get(key)]


def test_training_loss_falls(trained_run):
    _, run_dir, val_error = trained_run
    train_loss, val_loss = logged(run_dir, "train/loss_epoch"), logged(run_dir, "val/loss")
    assert len(train_loss) == len(val_loss) == EPOCHS
    # Each epoch draws other windows (other hours), so the epoch losses are not monotone; the trend is.
    assert train_loss[-1] < 0.95 * train_loss[0], train_loss
    assert val_loss[-1] < val_loss[0], val_loss


def test_a_run_without_wandb_logs_the_learning_rate_and_reports(trained_run):
    _, run_dir, _ = trained_run
    assert not (run_dir / "wandb").exists()
    assert logged(run_dir, "lr-Adam"), "LearningRateMonitor is on by default"
    assert (run_dir / METRICS_FILE).is_file() and (run_dir / PLOTS_DIR / "maps.png").is_file()


def validation_metric(checkpoint, cfg, key: str) -> float:
    """``key`` (a val/ metric) of the module reloaded from ``checkpoint`` alone, on the run's validation data."""
    module = NeuralOperatorModule.load_from_checkpoint(checkpoint)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return trainer.validate(module, datamodule=instantiate(cfg.data), verbose=False)[0][key]


def test_checkpoints_reload_to_what_was_trained(trained_run):
    """Both checkpoints give again the validation errors their weights had when they were written."""
    cfg, run_dir, _ = trained_run
    last = run_dir / LAST_CHECKPOINT
    assert math.isclose(validation_metric(last, cfg, "val/loss"), logged(run_dir, "val/loss")[-1], rel_tol=1e-5)
    (best,) = (run_dir / LAST_CHECKPOINT.parent).glob("best-*.ckpt")
    (best_state,) = [state for key, state in torch.load(best).get("callbacks", {}).items() if "ModelCheckpoint" in key]
    score = float(best_state["best_model_score"])  # the monitor's, val/rollout_rel_l2
    assert math.isclose(validation_metric(best, cfg, "val/rollout_rel_l2"), score, rel_tol=1e-5)


def test_checkpoint_reloads_with_weights_only(trained_run):
    _, run_dir, _ = trained_run
    path = run_dir / LAST_CHECKPOINT
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["nlat"] == 32
    model = NeuralOperatorModule.load_from_checkpoint(path)  # the checkpoint describes its network
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name
    assert model.std.ne(1).all(), "the data's normalisation travels with the checkpoint"


def test_effective_batch_size_sets_gradient_accumulation(tmp_path):
    cfg = compose_config(["batch_size=4", "training.effective_batch_size=16"], output_dir=tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.accumulate_grad_batches == 4


def test_batch_size_that_does_not_divide_fails_before_training(tmp_path, data_root):
    cfg = compose_config(
        [*TINY, "batch_size=4", "training.effective_batch_size=6", f"paths.data_root={data_root / 'unused'}"],
        output_dir=tmp_path,
    )
    with pytest.raises(InterpolationResolutionError, match=r"training.effective_batch_size=6.*batch_size=4"):
        train(cfg)
    assert not (data_root / "unused").exists()


def test_the_validation_rollout_error_picks_the_checkpoint_and_is_returned(trained_run):
    """val/rollout_rel_l2 is in metrics.csv at every epoch, the best checkpoint is the epoch where it is lowest, and
    train() returns its last value (what sweepers minimise)."""
    _, run_dir, val_error = trained_run
    errors = logged(run_dir, "val/rollout_rel_l2")
    assert len(errors) == EPOCHS and len(logged(run_dir, "val/rollout_rel_l2_persistence")) == EPOCHS
    assert len(logged(run_dir, "val/rollout_rel_l2/1h")) == EPOCHS  # the map leads within the 2-h rollout
    assert val_error == pytest.approx(errors[-1], rel=1e-6)
    (best,) = (run_dir / LAST_CHECKPOINT.parent).glob("best-*.ckpt")
    state = next(
        value for key, value in torch.load(best, weights_only=False)["callbacks"].items() if "ModelCheckpoint" in key
    )
    assert state["monitor"] == "val/rollout_rel_l2"
    assert float(state["best_model_score"]) == pytest.approx(min(errors), rel=1e-6)
    assert f"epoch{errors.index(min(errors)):03d}" in best.name
