"""What a run leaves after its test stage: test_metrics.json and the pictures under plots/."""

import json
import math
from pathlib import Path

import numpy as np

from runs.folder import METRICS_FILE, PLOTS_DIR

MODEL = "model"  # test_metrics.json's name of the trained network's forecast; the others are baselines


def metrics_record(results: dict, channels: list[str], meta: dict) -> dict:
    """The machine-readable test metrics of one run (the schema the sweep report reads).

    rel_l2, rel_l2_se and rmse map each forecast ("model", then the baselines) to per-lead lists per channel;
    rel_l2 and its standard error over test trajectories also have the channel "mean". first_lead_worse_than maps
    each baseline to the first lead hour (per channel and for the mean) at which the model's mean error exceeds
    the baseline's, or None when it never does.
    """
    record = dict(meta)
    steps = len(results["rel_l2"][MODEL])
    record["channels"] = channels
    record["lead_hours"] = list(range(1, steps + 1))
    record["num_trajectories"] = results["num_trajectories"]
    names = [*channels, "mean"]
    for metric, columns in (("rel_l2", names), ("rel_l2_se", names), ("rmse", channels)):
        record[metric] = {forecast: _curves(values, columns) for forecast, values in results[metric].items()}
    model = record["rel_l2"][MODEL]
    record["first_lead_worse_than"] = {
        baseline: {name: _first_lead_above(model[name], curves[name]) for name in names}
        for baseline, curves in record["rel_l2"].items()
        if baseline != MODEL
    }
    spectrum = results["power_spectrum"]
    record["power_spectrum"] = {"lead_hours": list(spectrum["lead_hours"])}
    for kind in ("target", "prediction"):
        values = np.asarray(spectrum[kind], dtype=float)  # (leads, channels, degrees)
        record["power_spectrum"][kind] = {channel: values[:, index].tolist() for index, channel in enumerate(channels)}
    return record


def write_run_report(results: dict, channels: list[str], meta: dict, run_dir: str | Path) -> dict[str, Path]:
    """Write test_metrics.json, the plots and the rollout animation of one run; returns their paths by name (for
    W&B: `evaluation.callbacks.log_images`)."""
    from evaluation.plots import (
        animate_rollout,
        plot_maps,
        plot_power_spectrum,
        plot_rollout_error,
        plot_training_curves,
    )

    run_dir = Path(run_dir)
    record = metrics_record(results, channels, meta)
    (run_dir / METRICS_FILE).write_text(json.dumps(record, indent=2))
    plots_dir = run_dir / PLOTS_DIR
    plots = {
        "rollout_error": plots_dir / "rollout_error.png",
        "maps": plots_dir / "maps.png",
        "power_spectrum": plots_dir / "power_spectrum.png",
        "rollout": plots_dir / "rollout.gif",
    }
    label = meta.get("model", MODEL)
    curves = {
        label if forecast == MODEL else forecast: {"rel_l2": curve, "rel_l2_se": record["rel_l2_se"][forecast]}
        for forecast, curve in record["rel_l2"].items()
    }
    baselines = [forecast for forecast in record["rel_l2"] if forecast != MODEL]
    title = f"test rollout error over {record['num_trajectories']} trajectories (+- 1 SE), {run_dir.name}"
    plot_rollout_error(curves, plots["rollout_error"], title=title, baselines=baselines)
    example = results["example"]
    target, prediction = np.asarray(example["target"]), np.asarray(example["prediction"])  # (steps, channels, ...)
    lead_index = [lead - 1 for lead in example["lead_hours"]]
    plot_maps(target[lead_index], prediction[lead_index], example["lead_hours"], channels, plots["maps"])
    plot_power_spectrum({label: record["power_spectrum"]}, channels, plots["power_spectrum"])
    animate_rollout(target, prediction, channels, plots["rollout"])
    if (run_dir / "metrics.csv").is_file():
        plots["training_curves"] = plots_dir / "training_curves.png"
        plot_training_curves(run_dir / "metrics.csv", plots["training_curves"])
    return plots


def _curves(values: object, columns: list[str]) -> dict[str, list[float | None]]:
    """(steps, columns) -> {column: per-lead list}; an undefined value (a standard error of one trajectory) is None,
    so that the file stays strict JSON."""
    values = np.asarray(values, dtype=float)
    return {
        column: [value if math.isfinite(value) else None for value in values[:, index].tolist()]
        for index, column in enumerate(columns)
    }


def _first_lead_above(model: list[float], baseline: list[float]) -> int | None:
    """The first lead hour at which the model's error exceeds the baseline's."""
    worse = [lead for lead, (ours, theirs) in enumerate(zip(model, baseline, strict=True), 1) if ours > theirs]
    return worse[0] if worse else None
