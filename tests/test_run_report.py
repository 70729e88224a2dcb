"""One run's report: test_metrics.json with every baseline and standard error, its figures, the animation on W&B."""

import json

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger

from evaluation.callbacks import log_images
from evaluation.run_report import metrics_record, write_run_report

CHANNELS = ["geopotential", "vorticity", "divergence"]
STEPS, NLAT, NLON, DEGREES = 3, 8, 16, 8


def results() -> dict:
    """Test results as the module leaves them: per forecast (steps, channels + mean) errors, 5 trajectories."""

    def curves(mean_column: list[float]) -> torch.Tensor:
        channels = torch.tensor([[0.5, 1.0, 1.5]], dtype=torch.float64)  # per-channel multiples of the mean
        values = torch.tensor(mean_column, dtype=torch.float64)[:, None] * channels
        return torch.cat([values, values.mean(dim=1, keepdim=True)], dim=1)

    rel_l2 = {
        "model": curves([0.1, 0.3, 0.5]),
        "persistence": curves([0.2, 0.25, 0.6]),  # the model is worse at 2 h only
        "climatology": curves([1.0, 1.0, 1.0]),  # never worse
        "linear": curves([0.01, 0.02, 0.03]),  # worse from 1 h
    }
    rel_l2["model"][0, 1] = 0.005  # vorticity at 1 h beats linear (0.01): per channel, worse from 2 h
    rng = np.random.default_rng(0)
    example = rng.standard_normal((STEPS, 3, NLAT, NLON))
    spectrum = torch.rand(2, 3, DEGREES, dtype=torch.float64)
    return {
        "num_trajectories": 5,
        "rel_l2": rel_l2,
        "rel_l2_se": {name: 0.1 * values for name, values in rel_l2.items()} | {"climatology": torch.zeros(STEPS, 4)},
        "rmse": {name: values[:, :3] * 100 for name, values in rel_l2.items()},
        "power_spectrum": {"lead_hours": [1, 3], "target": spectrum, "prediction": 2 * spectrum},
        "example": {"lead_hours": [1, 3], "target": example, "prediction": example + 0.1},
    }


def test_metrics_record_has_every_baseline_standard_errors_and_first_leads_worse():
    record = metrics_record(results(), CHANNELS, {"model": "sfno", "parameters": 10})

    assert record["model"] == "sfno" and record["num_trajectories"] == 5
    assert record["lead_hours"] == [1, 2, 3]
    for metric in ("rel_l2", "rel_l2_se", "rmse"):
        assert list(record[metric]) == ["model", "persistence", "climatology", "linear"]
    assert list(record["rel_l2"]["model"]) == [*CHANNELS, "mean"]
    assert list(record["rmse"]["model"]) == CHANNELS, "no mean over channels of different units"
    np.testing.assert_allclose(record["rel_l2"]["model"]["mean"], [0.1, 0.3, 0.5])
    np.testing.assert_allclose(record["rel_l2_se"]["persistence"]["mean"], [0.02, 0.025, 0.06])
    worse = record["first_lead_worse_than"]
    assert list(worse) == ["persistence", "climatology", "linear"]
    assert worse["persistence"] == dict.fromkeys([*CHANNELS, "mean"], 2)
    assert worse["climatology"] == dict.fromkeys([*CHANNELS, "mean"], None)
    assert worse["linear"] == {"geopotential": 1, "vorticity": 2, "divergence": 1, "mean": 1}
    spectrum = record["power_spectrum"]
    assert spectrum["lead_hours"] == [1, 3]
    assert np.asarray(spectrum["prediction"]["vorticity"]).shape == (2, DEGREES)


def test_undefined_standard_errors_are_null_in_strict_json():
    one_trajectory = results() | {"num_trajectories": 1}
    one_trajectory["rel_l2_se"] = {name: torch.full((STEPS, 4), float("nan")) for name in one_trajectory["rel_l2"]}

    text = json.dumps(metrics_record(one_trajectory, CHANNELS, {}), allow_nan=False)

    assert json.loads(text)["rel_l2_se"]["model"]["mean"] == [None, None, None]


def test_write_run_report_writes_metrics_figures_and_the_animation_wandb_plays(tmp_path):
    paths = write_run_report(results(), CHANNELS, {"model": "sfno"}, tmp_path)

    assert set(paths) == {"rollout_error", "maps", "power_spectrum", "rollout"}
    assert paths["rollout"] == tmp_path / "plots" / "rollout.gif"
    for path in paths.values():
        assert path.stat().st_size > 0, path
    assert paths["rollout"].read_bytes()[:6] == b"GIF89a"
    record = json.loads((tmp_path / "test_metrics.json").read_text())
    assert record["first_lead_worse_than"]["persistence"]["mean"] == 2

    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    trainer = Trainer(logger=logger, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    try:
        log_images(trainer, {f"test/{name}": path for name, path in paths.items()})
    finally:
        logger.experiment.finish()
    media = tmp_path.glob("wandb/offline-run-*/files/media/*/test/*")
    assert sorted(path.parent.parent.name + "/" + path.name.split("_")[0] for path in media) == [
        "images/maps",
        "images/power",
        "images/rollout",
        "videos/rollout",
    ], "the GIF goes to W&B as a video, the PNGs as images"
