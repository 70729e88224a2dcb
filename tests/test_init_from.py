"""init_from=<run or checkpoint>: a new run in its own folder that starts from another run's network weights."""

import pytest
import torch

from runs.build import build_module
from runs.checks import check_config
from runs.folder import LAST_CHECKPOINT, find_checkpoint, quoted
from runs.init_from import WeightMismatchError, check_init_from, load_initial_weights
from tests.conftest import TINY, compose_config, run_train


def network(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value for key, value in module.state_dict().items() if key.startswith("net.")}


def test_the_new_module_starts_from_the_runs_best_weights_with_another_config(finished_run):
    cfg = compose_config(
        [*TINY, f"init_from={quoted(str(finished_run))}", "training.lr=1e-3", "training.rollout_steps=2"]
    )
    check_config(cfg)
    best = torch.load(find_checkpoint(finished_run, "best"), weights_only=True)["state_dict"]
    weights = network(build_module(cfg))
    assert weights.keys() == {key for key in best if key.startswith("net.")}
    assert all(torch.equal(weights[key], best[key]) for key in weights)


def test_a_checkpoint_file_works_too_and_a_mismatch_names_the_keys(finished_run):
    module = build_module(compose_config([*TINY, "model.width=16"]))
    with pytest.raises(WeightMismatchError, match=r"shapes differ: net\.net\..*\[4\] in the checkpoint, \[8\] here"):
        load_initial_weights(module, finished_run / LAST_CHECKPOINT)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.width=16"], "its network does not fit the one this config builds (shapes differ: net.net."),
        (["init_from=/nowhere"], "init_from=/nowhere: no checkpoint or run folder at /nowhere"),
        (["resume=/nowhere"], "init_from and resume exclude each other"),
    ],
)
def test_problems_are_found_before_the_run_starts(finished_run, overrides, message):
    cfg = compose_config([*TINY, f"init_from={quoted(str(finished_run))}", *overrides])
    (problem,) = check_init_from(cfg)
    assert message in problem


def test_train_py_starts_a_new_run_from_the_weights(finished_run, tmp_path, data_root):
    result = run_train(
        [*TINY, f"init_from={finished_run}", "training.lr=1e-3", "logger=csv", f"paths.data_root={data_root}"], tmp_path
    )
    (run,) = (tmp_path / "outputs").glob("*/*")
    assert run != finished_run and (run / "test_metrics.json").is_file()
    assert "init_from" not in run.name, "the source is in .hydra/overrides.yaml, not in the folder's name"
    assert f"network initialised from {find_checkpoint(finished_run, 'best')}" in result.stdout + result.stderr
