"""One run's report: test_errors.npz, test_metrics.json computed from it with every baseline, standard error and
paired test, its figures, the animation on W&B."""

import json

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger

from evaluation.callbacks import log_images
from evaluation.run_report import CLIMATE_AFTER_HOURS, metrics_record, physics_record, rollout_physics, write_run_report
from evaluation.test_errors import TrajectoryErrors, load_test_errors
from models.metrics import METRICS

CHANNELS = ["geopotential", "vorticity", "divergence"]
FORECASTS = ["model", "persistence", "climatology", "linear"]
STEPS, NLAT, NLON, DEGREES, TRAJECTORIES = 3, 8, 16, 8, 6


def with_means(means: np.ndarray, spread: float, seed: int) -> np.ndarray:
    """(TRAJECTORIES, channels, leads) values with exactly these per-(channel, lead) means: ``spread`` times
    standard normal noise, centred."""
    noise = np.random.default_rng(seed).standard_normal((TRAJECTORIES, *means.shape))
    return means + spread * (noise - noise.mean(axis=0))


def channel_curves(mean_over_channels: list[float]) -> np.ndarray:
    """(channels, leads) means whose channel mean is ``mean_over_channels``: the channels at 0.5, 1 and 1.5 times it."""
    return np.array([[0.5], [1.0], [1.5]]) * np.array(mean_over_channels)


def physics(steps: int) -> dict[str, np.ndarray]:
    """Per-trajectory physical diagnostics of the truth and each forecast as the module leaves them, random: every
    source starts from the truth's invariants."""
    rng = np.random.default_rng(1)
    sources, forecasts = len(FORECASTS) + 1, len(FORECASTS)
    invariants = 1 + 0.01 * rng.random((sources, TRAJECTORIES, 3, steps + 1))
    invariants[..., 0] = invariants[0, ..., 0]
    return {
        "invariants": invariants,  # (source, trajectory, invariant, hour 0..N)
        "moments": rng.random((sources, TRAJECTORIES, 3, steps, 2)),
        "energy_fraction_above": 1e-3 * rng.random((sources, TRAJECTORIES, 3, steps)),
        "latitude_band_rel_l2": rng.random((forecasts, TRAJECTORIES, 3, 6, steps)),
        "authors_pooled_rel_l2": rng.random((forecasts, TRAJECTORIES, steps)),
        "power_spectrum": rng.random((sources, steps, 3, DEGREES)),  # the mean over trajectories
    }


def results(steps: int = STEPS) -> dict:
    """Test results as the module leaves them: per-trajectory errors of each forecast, trajectories much alike
    (a spread of 0.001 against differences of 0.01 or more: every difference of means is significant)."""
    rel_l2 = {
        "model": channel_curves([0.1, 0.3, 0.5]),
        "persistence": channel_curves([0.2, 0.25, 0.6]),  # the model is worse at 2 h only
        "climatology": channel_curves([1.0, 1.0, 1.0]),  # never worse
        "linear": channel_curves([0.01, 0.02, 0.03]),  # worse from 1 h
    }
    rel_l2["model"][1, 0] = 0.005  # vorticity at 1 h beats linear (0.01): per channel, worse from 2 h
    errors = {
        "rel_l2": np.stack([with_means(rel_l2[name], 0.001, seed) for seed, name in enumerate(FORECASTS)]),
        "rmse": np.stack([with_means(100 * rel_l2[name], 0.1, seed) for seed, name in enumerate(FORECASTS)]),
    }
    example = np.random.default_rng(0).standard_normal((STEPS, 3, NLAT, NLON))
    spectrum = torch.rand(2, 3, DEGREES, dtype=torch.float64)
    return {
        "forecasts": FORECASTS,
        "sources": ["truth", *FORECASTS],
        "lead_hours": list(range(1, steps + 1)),
        "errors": errors,  # (forecast, trajectory, channel, lead)
        "physics": physics(steps),
        "band_limit": 5,
        "latitude_bands": [(90.0 - 15 * (band + 1), 90.0 - 15 * band) for band in range(6)],
        "power_spectrum": {"lead_hours": [1, 3], "target": spectrum, "prediction": 2 * spectrum},
        "example": {"lead_hours": [1, 3], "frame_hours": [1, 2, 3], "target": example, "prediction": example + 0.1},
    }


def trajectory_errors(results: dict) -> TrajectoryErrors:
    return TrajectoryErrors(results["forecasts"], CHANNELS, results["lead_hours"], results["errors"])


def test_metrics_record_has_every_baseline_standard_errors_and_first_leads_worse():
    record = metrics_record(trajectory_errors(results()), results()["power_spectrum"], {"model": "sfno"})

    assert record["model"] == "sfno" and record["num_trajectories"] == TRAJECTORIES
    assert record["lead_hours"] == [1, 2, 3]
    for metric in ("rel_l2", "rel_l2_se", "rmse"):
        assert list(record[metric]) == FORECASTS
    assert list(record["rel_l2"]["model"]) == [*CHANNELS, "mean"]
    assert list(record["rmse"]["model"]) == CHANNELS, "no mean over channels of different units"
    assert "rmse_se" not in record, "a root mean square has no standard error"
    np.testing.assert_allclose(record["rel_l2"]["model"]["mean"], [(0.05 + 0.005 + 0.15) / 3, 0.3, 0.5])
    np.testing.assert_allclose(record["rel_l2"]["model"]["vorticity"], [0.005, 0.3, 0.5])
    np.testing.assert_allclose(record["rmse"]["persistence"]["geopotential"], [10, 12.5, 30], rtol=1e-3)
    worse = record["first_lead_worse_than"]
    assert list(worse) == FORECASTS[1:]
    assert worse["persistence"] == dict.fromkeys([*CHANNELS, "mean"], 2)
    assert worse["climatology"] == dict.fromkeys([*CHANNELS, "mean"], None)
    assert worse["linear"] == {"geopotential": 1, "vorticity": 2, "divergence": 1, "mean": 1}
    assert record["first_lead_worse_on_mean_than"] == worse, "every difference here is significant"
    spectrum = record["power_spectrum"]
    assert spectrum["lead_hours"] == [1, 3]
    assert np.asarray(spectrum["prediction"]["vorticity"]).shape == (2, DEGREES)


def test_paired_tests_per_baseline_column_and_lead():
    errors = trajectory_errors(results())
    record = metrics_record(errors, results()["power_spectrum"], {})

    test = record["paired_tests"]["persistence"]["mean"]
    assert set(test) == {"difference", "ci_low", "ci_high", "p", "p_holm"}
    means = record["rel_l2"]
    expected = np.subtract(means["model"]["mean"], means["persistence"]["mean"])
    np.testing.assert_allclose(test["difference"], expected, atol=1e-12)
    assert expected[1] == pytest.approx(0.05)
    for field in test.values():
        assert len(field) == STEPS
    assert all(
        low < difference < high
        for low, difference, high in zip(test["ci_low"], test["difference"], test["ci_high"], strict=True)
    )
    assert all(p <= p_holm <= 1 for p, p_holm in zip(test["p"], test["p_holm"], strict=True))
    model_mean = errors.of("rel_l2", "model").mean(axis=1)  # each trajectory's channel mean
    persistence_mean = errors.of("rel_l2", "persistence").mean(axis=1)
    from scipy.stats import ttest_rel

    assert test["p"][1] == pytest.approx(ttest_rel(model_mean[:, 1], persistence_mean[:, 1]).pvalue, rel=1e-9)
    assert record["paired_test_method"]["metric"] == "rel_l2"


def test_first_lead_worse_than_ignores_a_worse_mean_that_is_not_significant():
    """The model's mean is above the baseline's at every lead; only from 3 h on by more than the trajectories'
    spread."""
    baseline = np.full((len(CHANNELS), 4), 0.5)
    model = baseline + np.array([0.01, 0.01, 0.2, 0.2])
    rng = np.random.default_rng(1)
    shared = rng.standard_normal((TRAJECTORIES, 1, 1))  # the trajectories' difficulty, common to both
    errors = {
        "rel_l2": np.stack([with_means(model, 0.05, 2), with_means(baseline, 0.05, 3)]) + 0.1 * shared,
        "rmse": np.ones((2, TRAJECTORIES, len(CHANNELS), 4)),
    }
    record = metrics_record(TrajectoryErrors(["model", "linear"], CHANNELS, [1, 2, 3, 4], errors), spectra(), {})

    assert record["first_lead_worse_on_mean_than"]["linear"] == dict.fromkeys([*CHANNELS, "mean"], 1)
    assert record["first_lead_worse_than"]["linear"] == dict.fromkeys([*CHANNELS, "mean"], 3)
    p_holm = record["paired_tests"]["linear"]["mean"]["p_holm"]
    assert p_holm[0] > 0.05 and p_holm[2] <= 0.05


def spectra() -> dict:
    return {"lead_hours": [1], "target": np.ones((1, 3, DEGREES)), "prediction": np.ones((1, 3, DEGREES))}


def test_undefined_standard_errors_and_tests_are_null_in_strict_json():
    one_trajectory = results()
    one_trajectory["errors"] = {name: values[:, :1] for name, values in one_trajectory["errors"].items()}

    text = json.dumps(metrics_record(trajectory_errors(one_trajectory), spectra(), {}), allow_nan=False)

    record = json.loads(text)
    assert record["rel_l2_se"]["model"]["mean"] == [None, None, None]
    assert record["paired_tests"]["linear"]["mean"]["p_holm"] == [None, None, None]
    assert record["first_lead_worse_than"]["linear"]["mean"] is None
    assert record["first_lead_worse_on_mean_than"]["linear"]["mean"] == 1


def test_write_run_report_writes_errors_metrics_figures_and_the_animation_wandb_plays(tmp_path):
    paths = write_run_report(results(), CHANNELS, {"model": "sfno"}, tmp_path)

    assert set(paths) == {
        "rollout_rel_l2",
        "rollout_rmse",
        "maps",
        "power_spectrum",
        "rollout",
        "invariant_drift",
        "latitude_bands",
        "spectral_ratio",
    }
    assert paths["rollout"] == tmp_path / "plots" / "rollout.gif"
    for path in paths.values():
        assert path.stat().st_size > 0, path
    assert paths["rollout"].read_bytes()[:6] == b"GIF89a"
    record = json.loads((tmp_path / "test_metrics.json").read_text())
    assert record["first_lead_worse_than"]["persistence"]["mean"] == 2
    errors = load_test_errors(tmp_path)
    assert (errors.forecasts, errors.channels, errors.lead_hours) == (FORECASTS, CHANNELS, [1, 2, 3])
    assert list(errors.metrics) == list(METRICS)
    np.testing.assert_array_equal(errors.metrics["rel_l2"], results()["errors"]["rel_l2"])

    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    trainer = Trainer(logger=logger, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    try:
        log_images(trainer, {f"test/{name}": path for name, path in paths.items()})
    finally:
        logger.experiment.finish()
    media = tmp_path.glob("wandb/offline-run-*/files/media/*/test/*")
    assert sorted(path.parent.parent.name + "/" + path.name.rsplit("_", 2)[0] for path in media) == [
        "images/invariant_drift",
        "images/latitude_bands",
        "images/maps",
        "images/power_spectrum",
        "images/rollout_rel_l2",
        "images/rollout_rmse",
        "images/spectral_ratio",
        "videos/rollout",
    ], "the GIF goes to W&B as a video, the PNGs as images"


def test_trajectory_errors_refuse_arrays_that_do_not_match_their_names():
    with pytest.raises(ValueError, match=r"rel_l2 has shape \(4, 6, 2, 3\).*3 channels"):
        TrajectoryErrors(FORECASTS, CHANNELS, [1, 2, 3], {"rel_l2": np.zeros((4, 6, 2, 3))})


@pytest.mark.parametrize(
    ("steps", "with_climate"), [(3, False), (2 * CLIMATE_AFTER_HOURS - 2, False), (2 * CLIMATE_AFTER_HOURS, True)]
)
def test_physics_record_compares_the_climate_only_over_a_last_half_past_the_horizon(steps, with_climate):
    record = physics_record(rollout_physics(results(steps), CHANNELS), CHANNELS)
    assert set(record) == {"invariants", "stability", "spectral_ratio", "latitude_bands", "authors_pooled_rel_l2"}
    for forecast in FORECASTS:
        assert ("climate_bias" in record["stability"][forecast]) == with_climate
        assert {"stable_fraction", "unstable", "median_exit_lead"} <= set(record["stability"][forecast])
    if with_climate:
        assert record["stability"]["model"]["climate_bias"]["window_leads"] == CLIMATE_AFTER_HOURS
        assert list(record["stability"]["model"]["climate_bias"]["mean_bias"]) == CHANNELS
    drift = record["invariants"]["relative_drift"]
    assert list(drift) == ["truth", *FORECASTS] and drift["truth"]["energy"][0] == 0.0, "no drift at lead 0"
    assert record["latitude_bands"]["labels"] == ["75-90", "60-75", "45-60", "30-45", "15-30", "0-15"]
    assert len(record["latitude_bands"]["rel_l2"]["model"]["mean"]) == 6  # per band, per lead
    assert record["authors_pooled_rel_l2"]["lead_hours"] == [lead for lead in (10, 30) if lead <= steps]
    assert record["spectral_ratio"]["band_limit"] == 5
    assert set(record["spectral_ratio"]["energy_fraction_above"]["linear"]["mean"]) == {
        "forecast",
        "forecast_se",
        "truth",
        "truth_se",
        "excess",
        "excess_se",
    }
