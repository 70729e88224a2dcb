"""What a run leaves after its test stage: test_metrics.json and the pictures under plots/."""

import json
from pathlib import Path

import numpy as np

from evaluation.report import METRICS_FILE

PLOTS_DIR = "plots"


def metrics_record(results: dict, channels: list[str], meta: dict) -> dict:
    """The machine-readable test metrics of one run (the schema the sweep report reads)."""
    record = dict(meta)
    steps = len(results["rel_l2"]["model"])
    record["channels"] = channels
    record["lead_hours"] = list(range(1, steps + 1))
    for metric in ("rel_l2", "rmse"):
        record[metric] = {}
        for forecast in ("model", "persistence"):
            values = np.asarray(results[metric][forecast], dtype=float)  # (steps, channels)
            curves = {channel: values[:, index].tolist() for index, channel in enumerate(channels)}
            if metric == "rel_l2":
                curves["mean"] = values.mean(axis=1).tolist()
            record[metric][forecast] = curves
    model_mean = np.asarray(record["rel_l2"]["model"]["mean"])
    persistence_mean = np.asarray(record["rel_l2"]["persistence"]["mean"])
    worse = np.flatnonzero(model_mean > persistence_mean)
    record["first_lead_worse_than_persistence"] = int(worse[0]) + 1 if len(worse) else None
    return record


def write_run_report(results: dict, channels: list[str], meta: dict, run_dir: str | Path) -> dict[str, Path]:
    """Write test_metrics.json and the plots of one run; returns the PNG paths by name (for W&B)."""
    from evaluation.plots import plot_maps, plot_rollout_error, plot_training_curves

    run_dir = Path(run_dir)
    record = metrics_record(results, channels, meta)
    (run_dir / METRICS_FILE).write_text(json.dumps(record, indent=2))
    plots = {
        "rollout_error": run_dir / PLOTS_DIR / "rollout_error.png",
        "maps": run_dir / PLOTS_DIR / "maps.png",
    }
    curves = {
        meta.get("model", "model"): {"model": record["rel_l2"]["model"], "persistence": record["rel_l2"]["persistence"]}
    }
    plot_rollout_error(curves, plots["rollout_error"], title=f"test rollout error, {run_dir.name}")
    example = results["example"]
    plot_maps(
        np.asarray(example["target"]), np.asarray(example["prediction"]), example["lead_hours"], channels, plots["maps"]
    )
    if (run_dir / "metrics.csv").is_file():
        plots["training_curves"] = run_dir / PLOTS_DIR / "training_curves.png"
        plot_training_curves(run_dir / "metrics.csv", plots["training_curves"])
    return plots
