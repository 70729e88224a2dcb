"""A run on a GPU machine says how to fill the GPU (experiment=gpu); the GPU figures themselves need a GPU."""

import pytest
import torch

from runs.start import start_run
from tests.conftest import TINY, compose_config


@pytest.mark.parametrize(("overrides", "hint"), [([], True), (["trainer=cpu"], False), (["experiment=gpu"], False)])
def test_a_run_on_a_gpu_machine_says_how_to_fill_the_gpu(overrides, hint, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level("INFO", logger="runs.start"):
        start_run(compose_config([*TINY, *overrides], output_dir=tmp_path))
    assert ("`python train.py experiment=gpu`" in caplog.text) is hint
