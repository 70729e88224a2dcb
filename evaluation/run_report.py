"""What a run leaves after its test stage: test_errors.npz, test_metrics.json computed from it, and the pictures under
plots/."""

import json
import math
from pathlib import Path

import numpy as np

from evaluation.statistics import ALPHA, holm, paired
from evaluation.test_errors import TrajectoryErrors
from models import MODEL
from models.metrics import METRICS
from runs.folder import METRICS_CSV, METRICS_FILE, PLOTS_DIR

COMPARED_METRIC = "rel_l2"  # the metric of the paired tests against the baselines and of first_lead_worse_than
CONFIDENCE = 0.95  # of the paired tests' intervals of the difference


def metrics_record(errors: TrajectoryErrors, power_spectrum: dict, meta: dict) -> dict:
    """The machine-readable test metrics of one run (the schema the sweep report reads), computed from the
    per-trajectory ``errors`` alone.

    Each metric of `models.metrics.METRICS` maps each forecast ("model", then the baselines) to per-lead lists per
    column (the channels, and "mean" where the metric has a channel mean); a metric aggregated with a standard
    error over test trajectories has it under "<metric>_se". paired_tests, first_lead_worse_than and
    first_lead_worse_on_mean_than compare the model with each baseline on COMPARED_METRIC (see `paired_tests`).
    """
    record = dict(meta)
    record["channels"] = errors.channels
    record["lead_hours"] = errors.lead_hours
    record["num_trajectories"] = errors.num_trajectories
    summaries = {}  # metric -> forecast -> (value, standard error or None), each (column, lead)
    for metric in METRICS.values():
        columns = metric.columns(errors.channels)
        summaries[metric.name] = {
            forecast: metric.summary(errors.of(metric.name, forecast)) for forecast in errors.forecasts
        }
        for forecast, (value, standard_error) in summaries[metric.name].items():
            record.setdefault(metric.name, {})[forecast] = _curves(value, columns)
            if standard_error is not None:
                record.setdefault(f"{metric.name}_se", {})[forecast] = _curves(standard_error, columns)
    record["paired_test_method"] = {
        "metric": COMPARED_METRIC,
        "test": "paired t over test trajectories, two-sided",
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "correction": "Holm over the leads, per baseline and column",
    }
    record["paired_tests"] = paired_tests(errors)
    record["first_lead_worse_than"] = {
        baseline: {column: first_lead_significantly_worse(test) for column, test in by_column.items()}
        for baseline, by_column in record["paired_tests"].items()
    }
    columns = METRICS[COMPARED_METRIC].columns(errors.channels)
    model, _ = summaries[COMPARED_METRIC][MODEL]
    record["first_lead_worse_on_mean_than"] = {
        baseline: {column: _first_lead_above(model[index], theirs[index]) for index, column in enumerate(columns)}
        for baseline, (theirs, _) in summaries[COMPARED_METRIC].items()
        if baseline != MODEL
    }
    record["power_spectrum"] = {"lead_hours": list(power_spectrum["lead_hours"])}
    for kind in ("target", "prediction"):
        values = np.asarray(power_spectrum[kind], dtype=float)  # (leads, channels, degrees)
        record["power_spectrum"][kind] = {
            channel: values[:, index].tolist() for index, channel in enumerate(errors.channels)
        }
    return record


def paired_tests(errors: TrajectoryErrors) -> dict[str, dict[str, dict[str, list[float | None]]]]:
    """The model against each baseline on COMPARED_METRIC, lead by lead, paired over the same test trajectories:
    {baseline: {column: {"difference", "ci_low", "ci_high", "p", "p_holm": per-lead lists}}}, difference = model
    minus baseline (negative: the model's error is lower), undefined values (one trajectory, no spread) None.

    Two-sided paired t-tests (`evaluation.statistics.paired`), Holm-adjusted over the leads of each (baseline,
    column): the question "from which lead on is the model worse?" scans every lead, so the family is the leads.
    Two-sided rather than one-sided, so that the p-values are those of the reported 95% intervals and of the sweep
    report's comparisons: a lead flagged worse has an interval wholly above zero. It is the conservative choice (a
    one-sided test at 0.05 flags differences the two-sided one calls not significant).
    """
    metric = METRICS[COMPARED_METRIC]
    model = metric.per_column(errors.of(COMPARED_METRIC, MODEL))  # (trajectory, column, lead)
    columns = metric.columns(errors.channels)
    tests = {}
    for baseline in errors.forecasts:
        if baseline == MODEL:
            continue
        theirs = metric.per_column(errors.of(COMPARED_METRIC, baseline))
        tests[baseline] = {}
        for index, column in enumerate(columns):
            comparisons = [
                paired(model[:, index, lead], theirs[:, index, lead], CONFIDENCE) for lead in range(model.shape[-1])
            ]
            test = {
                field: [getattr(comparison, field) for comparison in comparisons]
                for field in ("difference", "ci_low", "ci_high", "p")
            }
            test["p_holm"] = holm(test["p"])
            tests[baseline][column] = {field: _finite_or_none(values) for field, values in test.items()}
    return tests


def first_lead_significantly_worse(test: dict[str, list[float | None]]) -> int | None:
    """The first lead hour at which the model's error is significantly above the baseline's (difference > 0 and
    Holm-adjusted p <= ALPHA, see `paired_tests`), or None."""
    for lead, (difference, p_holm) in enumerate(zip(test["difference"], test["p_holm"], strict=True), 1):
        if difference is not None and p_holm is not None and difference > 0 and p_holm <= ALPHA:
            return lead
    return None


def write_run_report(results: dict, channels: list[str], meta: dict, run_dir: str | Path) -> dict[str, Path]:
    """Write test_errors.npz, test_metrics.json, the plots and the rollout animation of one run; returns the
    pictures' paths by name (for W&B: `evaluation.callbacks.log_images`)."""
    from evaluation.plots import (
        animate_rollout,
        plot_maps,
        plot_power_spectrum,
        plot_rollout_error,
        plot_training_curves,
    )

    run_dir = Path(run_dir)
    errors = TrajectoryErrors(results["forecasts"], list(channels), results["lead_hours"], results["errors"])
    errors.save(run_dir)
    record = metrics_record(errors, results["power_spectrum"], meta)
    (run_dir / METRICS_FILE).write_text(json.dumps(record, indent=2))
    plots_dir = run_dir / PLOTS_DIR
    plots = {}
    label = meta.get("model", MODEL)
    baselines = [forecast for forecast in errors.forecasts if forecast != MODEL]
    for metric in METRICS.values():
        if not metric.plotted:
            continue
        plots[f"rollout_{metric.name}"] = plots_dir / f"rollout_{metric.name}.png"
        standard_errors = record.get(f"{metric.name}_se", {})
        curves = {
            label if forecast == MODEL else forecast: {
                metric.name: curve,
                f"{metric.name}_se": standard_errors.get(forecast, {}),
            }
            for forecast, curve in record[metric.name].items()
        }
        band = " (+- 1 SE)" if standard_errors else ""
        title = f"test rollout {metric.name} over {record['num_trajectories']} trajectories{band}, {run_dir.name}"
        plot_rollout_error(
            curves,
            plots[f"rollout_{metric.name}"],
            title=title,
            baselines=baselines,
            metric=metric.name,
            ylabel=metric.label,
        )
    plots |= {
        "maps": plots_dir / "maps.png",
        "power_spectrum": plots_dir / "power_spectrum.png",
        "rollout": plots_dir / "rollout.gif",
    }
    example = results["example"]
    target, prediction = np.asarray(example["target"]), np.asarray(example["prediction"])  # (steps, channels, ...)
    lead_index = [lead - 1 for lead in example["lead_hours"]]
    plot_maps(target[lead_index], prediction[lead_index], example["lead_hours"], channels, plots["maps"])
    plot_power_spectrum({label: record["power_spectrum"]}, channels, plots["power_spectrum"])
    animate_rollout(target, prediction, channels, plots["rollout"])
    if (run_dir / METRICS_CSV).is_file():
        plots["training_curves"] = plots_dir / "training_curves.png"
        plot_training_curves(run_dir / METRICS_CSV, plots["training_curves"])
    return plots


def _curves(values: np.ndarray, columns: list[str]) -> dict[str, list[float | None]]:
    """(columns, leads) -> {column: per-lead list}; an undefined value (a standard error of one trajectory) is None,
    so that the file stays strict JSON."""
    return {column: _finite_or_none(values[index].tolist()) for index, column in enumerate(columns)}


def _finite_or_none(values: list[float]) -> list[float | None]:
    return [value if math.isfinite(value) else None for value in values]


def _first_lead_above(model: np.ndarray, baseline: np.ndarray) -> int | None:
    """The first lead hour at which the model's mean error exceeds the baseline's (a diverged, infinite one does;
    an undefined one does not)."""
    worse = np.flatnonzero(model > baseline)
    return int(worse[0]) + 1 if len(worse) else None
