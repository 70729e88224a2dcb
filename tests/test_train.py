"""Every model on every resolution, and what a run leaves behind."""

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
    smallest_data = ["data.spinup_steps=0", "data.rollout_steps=1", "data.train_steps=2", "training.rollout_steps=1"]
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
