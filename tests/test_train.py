"""Every model on every resolution, and what a run leaves behind."""

import csv
import itertools

import pytest
import torch
from hydra.utils import instantiate

from models import NeuralOperatorModule
from tests.conftest import TINY, compose_config
from train import train

MODELS = ["sfno", "fno", "sfno_th"]
DATA = ["32x64", "64x128", "128x256", "256x512"]


@pytest.mark.parametrize(("model", "data"), list(itertools.product(MODELS, DATA)))
def test_every_model_trains_on_every_resolution(model, data, data_root, tmp_path):
    # Fewest solver hours: generating even tiny data is the cost at 256x512.
    smallest_data = [
        "data.spinup_steps=0",
        "eval.rollout_steps=1",
        "eval.val_rollout_steps=1",
        "training.rollout_steps=1",
    ]
    overrides = [*TINY, *smallest_data, f"model={model}", f"data={data}", f"paths.data_root={data_root}", "debug=True"]
    cfg = compose_config(overrides, output_dir=tmp_path)
    val_error = train(cfg)
    assert torch.isfinite(torch.tensor(val_error))
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()


def test_effective_batch_size_sets_gradient_accumulation(tmp_path):
    cfg = compose_config(["batch_size=4", "training.effective_batch_size=16"], output_dir=tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.accumulate_grad_batches == 4


def test_batch_size_that_does_not_divide_fails_before_training(tmp_path, data_root):
    cfg = compose_config(
        [*TINY, "batch_size=4", "training.effective_batch_size=6", f"paths.data_root={data_root / 'unused'}"],
        output_dir=tmp_path,
    )
    with pytest.raises(Exception, match=r"training.effective_batch_size=6.*batch_size=4"):
        train(cfg)
    assert not (data_root / "unused").exists()


def test_checkpoint_reloads_with_weights_only(data_root, tmp_path):
    cfg = compose_config([*TINY, f"paths.data_root={data_root}", "debug=True"], output_dir=tmp_path)
    train(cfg)
    path = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["nlat"] == 32
    model = NeuralOperatorModule.load_from_checkpoint(path)  # the checkpoint describes its network
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name
    assert model.std.ne(1).all(), "the data's normalisation travels with the checkpoint"


def test_the_validation_rollout_error_picks_the_checkpoint_and_is_returned(data_root, tmp_path):
    """val/rollout_rel_l2 is in metrics.csv at every epoch, the best checkpoint is the epoch where it is lowest, and
    train() returns its last value (what sweepers minimise)."""
    overrides = [*TINY, "training.max_epochs=3", "logger=csv", f"paths.data_root={data_root}"]
    val_error = train(compose_config(overrides, output_dir=tmp_path))
    with (tmp_path / "metrics.csv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/rollout_rel_l2")]
    errors = [float(row["val/rollout_rel_l2"]) for row in rows]
    assert len(errors) == 3 and all(row["val/rollout_rel_l2_persistence"] for row in rows)
    assert [row["val/rollout_rel_l2/1h"] != "" for row in rows] == [True] * 3  # the map leads within 2 h
    assert val_error == pytest.approx(errors[-1], rel=1e-6)
    (best,) = (tmp_path / "ckpt").glob("best-*.ckpt")
    state = next(
        value for key, value in torch.load(best, weights_only=False)["callbacks"].items() if "ModelCheckpoint" in key
    )
    assert state["monitor"] == "val/rollout_rel_l2"
    assert float(state["best_model_score"]) == pytest.approx(min(errors), rel=1e-6)
    assert f"epoch{errors.index(min(errors)):03d}" in best.name
