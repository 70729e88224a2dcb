"""evaluate.py: a finished run tested again with overrides, into a folder of its own under <run>/eval/."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from evaluate import evaluation_config
from evaluation.test_errors import load_test_errors
from runs.folder import EVAL_CONFIG, EVAL_DIR, EVAL_LOG, METRICS_FILE, PHYSICS_FILE, SAVED_CONFIG
from tests.conftest import REPO
from tests.test_run_folders import assert_physics_summaries_are_the_means_of_test_physics


def evaluate(run: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(run), *args], cwd=run.parent, capture_output=True, text=True
    )


def test_a_longer_evaluation_gets_its_own_folder_and_test_data_and_leaves_the_runs_report_and_data(
    finished_run, data_root
):
    """A test rollout longer than the run's (5 h against 3) streams test trajectories of its own length from a file
    beside the cache file; the run's training data, statistics and baselines are reused as they are."""
    report = (finished_run / METRICS_FILE).read_bytes()
    config = (finished_run / SAVED_CONFIG).read_bytes()
    cache_files = {path: path.stat().st_mtime_ns for path in data_root.glob("swe_*.h5")}
    result = evaluate(finished_run, "eval.rollout_steps=5", "--checkpoint", "last")
    assert result.returncode == 0, result.stderr[-3000:]
    # The folder of this evaluation, whatever others the shared run holds (test modules may run in any order)
    (folder,) = [
        path
        for path in (finished_run / EVAL_DIR).iterdir()
        if path.name.endswith("_eval.rollout_steps=5_checkpoint=last")
    ]
    metrics = json.loads((folder / METRICS_FILE).read_text())
    assert metrics["lead_hours"] == [1, 2, 3, 4, 5], "the run trained with 3-hour test rollouts"
    assert metrics["checkpoint"].endswith("last.ckpt")
    assert (folder / EVAL_CONFIG).is_file() and not (folder / "plots").exists(), "the run's eval.plots=False"
    assert "written to" in (folder / EVAL_LOG).read_text()
    assert (finished_run / METRICS_FILE).read_bytes() == report, "the training's report is left as it was"
    assert (finished_run / SAVED_CONFIG).read_bytes() == config
    # The run's data is untouched; the 5-hour test trajectories are a file of their own.
    assert {path: path.stat().st_mtime_ns for path in cache_files} == cache_files, "the cache file was regenerated"
    (long_test,) = set(data_root.glob("swe_*.h5")) - set(cache_files)
    assert long_test.name.endswith("_test5h.h5")
    # The same test trajectories: the first three leads are the run's own test (the last checkpoint is the best one
    # of a one-epoch run).
    ours, runs = load_test_errors(folder), load_test_errors(finished_run)
    np.testing.assert_allclose(ours.metrics["rel_l2"][..., :3], runs.metrics["rel_l2"], rtol=1e-6)
    assert (folder / PHYSICS_FILE).is_file()
    for key in ("invariants", "stability", "spectral_ratio", "latitude_bands", "authors_pooled_rel_l2"):
        assert key in metrics, key
    assert_physics_summaries_are_the_means_of_test_physics(folder)


def test_overrides_set_keys_and_replace_groups(finished_run):
    cfg = evaluation_config(
        finished_run, ["batch_size=2", "data=64x128", "trainer.devices=2", "+trainer.fast_dev_run=1"]
    )
    assert (cfg.batch_size, cfg.data.batch_size, cfg.trainer.devices) == (2, 2, 2)
    assert (cfg.data.nlat, cfg.data.nlon, cfg.data.num_examples) == (64, 128, 256), "the preset as config/ has it"
    saved = evaluation_config(finished_run, [])
    assert OmegaConf.to_container(cfg.model) == OmegaConf.to_container(saved.model), "the saved config's nodes stay"
    assert cfg.output_dir == str(finished_run)


def test_a_run_saved_before_newer_keys_gets_what_it_did_and_takes_them_as_overrides(finished_run, tmp_path):
    """A run saved without data.test_rollout_steps and eval.plots: its test hours follow the test rollout and its
    report draws figures, as then; eval.plots=False applies without a `+`."""
    saved = OmegaConf.load(finished_run / SAVED_CONFIG)
    del saved.data["test_rollout_steps"], saved.eval["plots"]
    old_run = tmp_path / "old_run"
    (old_run / SAVED_CONFIG).parent.mkdir(parents=True)
    OmegaConf.save(saved, old_run / SAVED_CONFIG)
    cfg = evaluation_config(old_run, ["eval.rollout_steps=5"])
    assert (cfg.data.test_rollout_steps, cfg.eval.plots) == (5, True)
    assert evaluation_config(old_run, ["eval.plots=False"]).eval.plots is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.rolout_steps=5", "eval.rolout_steps is not a key of the run's config"),
        ("model=fno", "the model of an evaluation is its checkpoint's"),
        ("experiment=gpu", "this group sets keys across the config"),
        ("eval.rollout_steps=0", "eval.rollout_steps=0 must be an integer from 1 to the test trajectories' 3 hours"),
    ],
)
def test_an_override_that_cannot_apply_stops_before_any_folder(finished_run, override, message):
    result = evaluate(finished_run, override)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (finished_run / EVAL_DIR / "x").exists() and not any((finished_run / EVAL_DIR).glob(f"*{override}*"))
