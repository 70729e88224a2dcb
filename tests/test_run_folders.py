"""What `python train.py ...` leaves on disk, run as a user runs it."""

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from data import CHANNELS
from evaluation.physics import ENERGY_FACTOR
from evaluation.test_errors import load_test_errors
from evaluation.test_physics import load_test_physics
from sphere import INVARIANTS
from sphere.diagnostics import AUTHORS_LEAD_HOURS
from tests.conftest import TINY, compose_hydra_config, run_train

STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Runs write below the working directory: keep that out of the repository."""
    monkeypatch.chdir(tmp_path)


def run_dir_for(overrides: list[str]) -> str:
    """The run folder, relative to the working directory where it lies below it (outputs/: SWE_LOG_DIR)."""
    run_dir = Path(compose_hydra_config(overrides).hydra.run.dir)
    return str(run_dir.relative_to(Path.cwd()) if run_dir.is_relative_to(Path.cwd()) else run_dir)


def test_folder_name_of_the_blog_example():
    run_dir = run_dir_for(["model=sfno", "data=64x128", "data.num_examples=50", "training.max_epochs=1"])
    date = datetime.now().strftime("%Y-%m-%d")
    assert re.fullmatch(rf"outputs/{date}/{STAMP}_sfno64x128_data\.num_examples=50_training\.max_epochs=1", run_dir)


def test_folder_name_without_overrides_has_no_trailing_separator():
    run_dir = run_dir_for([])
    assert re.fullmatch(rf"outputs/\d{{4}}-\d{{2}}-\d{{2}}/{STAMP}_sfno32x64", run_dir)


def test_group_choices_and_debug_are_not_repeated_in_the_name():
    assert run_dir_for(["model=fno", "data=64x128"]).endswith("_fno64x128")
    assert run_dir_for(["debug=True"]) == "outputs/debug"


def test_a_run_leaves_one_complete_folder(tmp_path, data_root):
    run_train([*TINY, "eval.plots=True", f"paths.data_root={data_root}"], cwd=tmp_path)
    (day,) = (tmp_path / "outputs").iterdir()
    (run,) = day.iterdir()
    assert re.match(rf"{STAMP}_sfno32x64_batch_size=4_", run.name)  # TINY's overrides, sorted (then shortened)
    for expected in ("ckpt/last.ckpt", "train.log", ".hydra/config.yaml", "test_metrics.json", "plots/maps.png"):
        assert (run / expected).is_file(), expected
    assert len(list((run / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    assert "run folder" in (run / "train.log").read_text()
    assert_metrics_are_the_means_of_test_errors(run)
    assert_physics_summaries_are_the_means_of_test_physics(run)
    for plot in ("invariant_drift.png", "latitude_bands.png", "spectral_ratio.png"):
        assert (run / "plots" / plot).is_file(), plot


def assert_metrics_are_the_means_of_test_errors(run: Path) -> None:
    """test_errors.npz holds every forecast's error per test trajectory; test_metrics.json's means are theirs."""
    errors = load_test_errors(run)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert errors.forecasts == ["model", "persistence", "climatology", "linear"]
    assert errors.channels == list(CHANNELS) and errors.lead_hours == [1, 2, 3]  # TINY's eval.rollout_steps
    assert errors.num_trajectories == metrics["num_trajectories"] == 2  # TINY's data.num_test_examples
    for forecast in errors.forecasts:
        rel_l2 = errors.of("rel_l2", forecast)  # (trajectory, channel, lead)
        for index, channel in enumerate(CHANNELS):
            np.testing.assert_allclose(metrics["rel_l2"][forecast][channel], rel_l2[:, index].mean(axis=0), atol=1e-6)
            rmse = np.sqrt((errors.of("rmse", forecast)[:, index] ** 2).mean(axis=0))
            np.testing.assert_allclose(metrics["rmse"][forecast][channel], rmse, rtol=1e-6)
        channel_mean = rel_l2.mean(axis=1)  # each trajectory's mean over channels
        np.testing.assert_allclose(metrics["rel_l2"][forecast]["mean"], channel_mean.mean(axis=0), atol=1e-6)
        standard_error = channel_mean.std(axis=0, ddof=1) / np.sqrt(len(channel_mean))
        np.testing.assert_allclose(metrics["rel_l2_se"][forecast]["mean"], standard_error, atol=1e-6)


def assert_physics_summaries_are_the_means_of_test_physics(folder: Path) -> None:
    """test_physics.npz holds every forecast's and the truth's diagnostics per test trajectory, on test_errors.npz's
    trajectories and leads; test_metrics.json's summaries are computed from it alone."""
    physics, errors = load_test_physics(folder), load_test_errors(folder)
    metrics = json.loads((folder / "test_metrics.json").read_text())
    forecasts = errors.forecasts
    assert physics.labels["forecast"].tolist() == forecasts and physics.labels["source"].tolist() == [
        "truth",
        *forecasts,
    ]
    assert physics.labels["lead"].tolist() == errors.lead_hours and physics.num_trajectories == errors.num_trajectories
    assert physics.labels["hour"].tolist() == [0, *errors.lead_hours]
    columns = [*CHANNELS, "mean"]
    truth_energy = physics.of("invariants", "truth")[:, INVARIANTS.index("energy"), 1:]  # (trajectory, lead)

    def stable_so_far(source: str) -> np.ndarray:
        """(trajectory, hour 0..N): the rollout has kept its energy within ENERGY_FACTOR of the truth's so far."""
        if source == "truth":
            return np.ones((len(truth_energy), truth_energy.shape[1] + 1), dtype=bool)
        with np.errstate(invalid="ignore", over="ignore"):
            ratio = physics.of("invariants", source)[:, INVARIANTS.index("energy"), 1:] / truth_energy
        inside = np.isfinite(ratio) & (ratio <= ENERGY_FACTOR) & (ratio >= 1 / ENERGY_FACTOR)
        return np.concatenate([np.ones((len(inside), 1), dtype=bool), np.cumprod(inside, axis=1) == 1], axis=1)

    def mean_where(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Mean over trajectories (axis 0) of the kept values, NaN where none is."""
        count = kept.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.where(kept, values, 0).sum(axis=0) / count

    for source in ["truth", *forecasts]:
        invariants = physics.of("invariants", source)  # (trajectory, invariant, hour 0..N)
        with np.errstate(invalid="ignore", over="ignore"):
            drift = (invariants - invariants[..., :1]) / np.abs(invariants[..., :1])
        assert metrics["invariants"]["stable_rollouts"][source] == stable_so_far(source).sum(axis=0).tolist()
        for index, invariant in enumerate(INVARIANTS):
            expected = mean_where(drift[:, index], stable_so_far(source))
            reported = metrics["invariants"]["relative_drift"][source][invariant]
            np.testing.assert_allclose(finite_or_nan(reported), finite_or_nan(expected), rtol=1e-6, atol=1e-12)
    truth_fraction = physics.of("energy_fraction_above", "truth")  # (trajectory, channel, lead)
    for forecast in forecasts:
        bands = physics.of("latitude_band_rel_l2", forecast)  # (trajectory, channel, band, lead)
        fraction = physics.of("energy_fraction_above", forecast)
        summary = metrics["spectral_ratio"]["energy_fraction_above"][forecast]
        for index, column in enumerate(columns):
            per_trajectory = bands.mean(axis=1) if column == "mean" else bands[:, index]
            reported = metrics["latitude_bands"]["rel_l2"][forecast][column]
            np.testing.assert_allclose(finite_or_nan(reported), finite_or_nan(per_trajectory.mean(axis=0)), atol=1e-6)
            ours, truth = (
                (values.mean(axis=1) if column == "mean" else values[:, index]) for values in (fraction, truth_fraction)
            )
            for name, values in (("forecast", ours), ("excess", ours - truth)):
                expected = finite_or_nan(mean_where(values, stable_so_far(forecast)[:, 1:]))
                np.testing.assert_allclose(finite_or_nan(summary[column][name]), expected, atol=1e-6)
        pooled = physics.of("authors_pooled_rel_l2", forecast).mean(axis=0)  # (lead,)
        their_leads = [lead for lead in AUTHORS_LEAD_HOURS if lead <= len(errors.lead_hours)]
        expected = finite_or_nan([pooled[lead - 1] for lead in their_leads])
        np.testing.assert_allclose(
            finite_or_nan(metrics["authors_pooled_rel_l2"]["mean"][forecast]), expected, atol=1e-6
        )
        ratio = physics.of("invariants", forecast)[:, INVARIANTS.index("energy"), 1:] / truth_energy
        stable = (np.isfinite(ratio) & (ratio <= ENERGY_FACTOR) & (ratio >= 1 / ENERGY_FACTOR)).all(axis=1)
        assert metrics["stability"][forecast]["stable_fraction"] == stable.mean()


def finite_or_nan(values: list[float | None] | np.ndarray) -> np.ndarray:
    """test_metrics.json writes a value that is not finite as null: NaN on both sides compares equal."""
    values = np.array([np.nan if value is None else value for value in values], dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def test_debug_runs_replace_the_debug_folder_and_skip_wandb(tmp_path, data_root):
    debug_dir = tmp_path / "outputs" / "debug"
    run_train([*TINY, f"paths.data_root={data_root}", "debug=True"], cwd=tmp_path)
    (debug_dir / "ckpt" / "stale.ckpt").write_text("left by an earlier run")
    run_train([*TINY, f"paths.data_root={data_root}", "debug=True"], cwd=tmp_path)
    assert sorted(path.name for path in (tmp_path / "outputs").iterdir()) == ["debug"]
    assert not (debug_dir / "ckpt" / "stale.ckpt").exists()
    assert (debug_dir / "ckpt" / "last.ckpt").is_file() and (debug_dir / "test_metrics.json").is_file()
    assert not (debug_dir / "wandb").exists()
    assert (debug_dir / "train.log").read_text().count("run folder") == 1


def test_multirun_gives_each_job_a_complete_folder_and_its_own_wandb_run(tmp_path, data_root):
    run_train(["-m", "model=sfno,fno", *TINY, f"paths.data_root={data_root}"], cwd=tmp_path)
    assert not (tmp_path / "multirun").exists()
    (day,) = (tmp_path / "outputs").iterdir()
    (sweep,) = day.iterdir()
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir())
    assert [job.name.split("_")[:2] for job in jobs] == [["0", "sfno32x64"], ["1", "fno32x64"]]
    run_ids = set()
    for job in jobs:
        assert (job / "ckpt" / "last.ckpt").is_file() and (job / "test_metrics.json").is_file()
        assert (job / "train.log").is_file()
        assert {"test_errors.npz", "test_physics.npz"} <= {path.name for path in job.iterdir()}
        assert not (job / "plots").exists(), "eval.plots=False (TINY): the numbers without figures"
        (wandb_run,) = (job / "wandb").glob("offline-run-*")
        run_ids.add(wandb_run.name.rsplit("-", 1)[-1])
    assert len(run_ids) == 2
    assert (sweep / "comparison.md").is_file()


def test_printing_the_config_creates_nothing(tmp_path):
    result = run_train(["--cfg", "job"], cwd=tmp_path)
    assert "output_dir_scheme" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_missing_value_fails_naming_the_key(tmp_path):
    result = run_train(["data.nlat=???"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "data.nlat is missing" in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_folders_are_under_the_configured_log_dir(tmp_path):
    assert (Path.cwd() / run_dir_for([f"paths.log_dir={tmp_path / 'runs'}"])).parent.parent == tmp_path / "runs"
