"""What a run leaves after its test stage: test_errors.npz and test_physics.npz, test_metrics.json computed from them,
and the pictures under plots/."""

import json
import math
from pathlib import Path

import numpy as np

from evaluation.physics import (
    ENERGY_FACTOR,
    climate_bias,
    energy_fraction_summary,
    exit_leads,
    mean_over_kept,
    relative_drift,
    spectral_ratio,
    stability,
    unstable_as_nan,
)
from evaluation.statistics import ALPHA, holm, paired
from evaluation.test_errors import TrajectoryErrors
from evaluation.test_physics import MOMENTS, RolloutPhysics
from models import MODEL, TRUTH
from models.metrics import CHANNEL_MEAN, METRICS, mean_with_standard_error
from runs.folder import METRICS_CSV, METRICS_FILE, PLOTS_DIR
from sphere import INVARIANTS
from sphere.diagnostics import AUTHORS_LEAD_HOURS

COMPARED_METRIC = "rel_l2"  # the metric of the paired tests against the baselines and of first_lead_worse_than
CONFIDENCE = 0.95  # of the paired tests' intervals of the difference
# The climate a forecast settles into is compared with the solver's over the last half of the rollout only where
# that half starts past this lead (rollouts of about 200 h and longer): before it, a forecast still follows its own
# trajectory, and the window's statistics differ from the truth's by that window's weather. The 20-h error of the
# default SFNO is 0.15 and still rising, persistence's 1.5: 100 h is a conservative guess at the horizon, not a
# measured one.
CLIMATE_AFTER_HOURS = 100
# What test_metrics.json says of the authors' metric (sphere.diagnostics.pooled_relative_l2 has the details).
AUTHORS_METRIC_SOURCE = (
    "torch-harmonics' shallow-water example (examples/train_sfno.py, v0.6.0 to v0.7.4): l2loss_sphere(relative=True), "
    "the relative L2 error in physical units with the three channels pooled before the ratio, mean over 20 random "
    "initial conditions (50 in v0.7.4), after 10 one-hour steps (30 in v0.7.4). v0.6.0 to v0.6.2 report this root, "
    "later versions its square. Dominated by the geopotential's mean (about 1e5 m^2 s^-2), so far smaller than "
    "rel_l2. Their data differ: 256x512 grids (181x360 in v0.7.4), torch-harmonics' own initial draw "
    "(data.amplitude=1), no spin-up."
)


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


def physics_record(physics: RolloutPhysics, channels: list[str]) -> dict:
    """The physical diagnostics' summaries of test_metrics.json, computed from test_physics.npz's per-trajectory
    values alone: "invariants", "stability", "spectral_ratio", "latitude_bands" and "authors_pooled_rel_l2" (see
    docs/evaluation.md). Means are over test trajectories with their standard errors; a value that is not finite (a
    rollout that blew up, a standard error of one trajectory) is None. A forecast's invariant drift, energy above
    the band edge and climate are over its rollouts still stable at that hour (`evaluation.physics.unstable_as_nan`;
    "stable_rollouts" counts them), so that one rollout that blew up does not stand for all; the errors keep every
    rollout."""
    forecasts = physics.labels["forecast"].tolist()
    lead_hours = physics.labels["lead"].tolist()
    steps = len(lead_hours)
    energy = INVARIANTS.index("energy")
    truth_energy = physics.of("invariants", TRUTH)[:, energy, 1:]  # (trajectory, lead)
    exits = forecast_exits(physics)
    # Invariants: each source's drift from the initial state, per trajectory, then averaged over the stable ones.
    invariants = {"names": list(INVARIANTS), "hours": physics.labels["hour"].tolist()}
    for source, values in stable_drifts(physics, exits).items():
        mean, standard_error, count = mean_over_kept(values)  # (invariant, hour) each
        invariants.setdefault("relative_drift", {})[source] = _curves(mean, list(INVARIANTS))
        invariants.setdefault("relative_drift_se", {})[source] = _curves(standard_error, list(INVARIANTS))
        invariants.setdefault("stable_rollouts", {})[source] = count[0].tolist()
    # Stability: total energy against the truth's, lead by lead; the climate of the stable rollouts over a late window.
    with_climate = steps - steps // 2 >= CLIMATE_AFTER_HOURS  # the window's first lead is past the horizon
    stabilities = {"energy_factor": ENERGY_FACTOR, "climate_after_hours": CLIMATE_AFTER_HOURS}
    for forecast in forecasts:
        entry = stability(physics.of("invariants", forecast)[:, energy, 1:], truth_energy)
        stable = np.isnan(exits[forecast])  # (trajectory,): never left the range
        if with_climate and stable.any():
            bias = climate_bias(physics.of("moments", forecast)[stable], physics.of("moments", TRUTH)[stable])
            entry["climate_bias"] = {"window_leads": int(bias.pop("window_leads")), "rollouts": int(stable.sum())} | {
                name: dict(zip(channels, _finite_or_none(values.tolist()), strict=True))
                for name, values in bias.items()
            }
        stabilities[forecast] = entry
    # Spectra: the energy fraction above the band edge, per trajectory (and its channel mean), against the truth's.
    columns = [*channels, CHANNEL_MEAN]
    truth_fraction = _with_channel_mean(physics.of("energy_fraction_above", TRUTH))  # (trajectory, column, lead)
    spectra = {"band_limit": physics.band_limit, "lead_hours": lead_hours, "energy_fraction_above": {}}
    for forecast in forecasts:
        fraction = _with_channel_mean(physics.of("energy_fraction_above", forecast))
        summary = energy_fraction_summary(unstable_as_nan(fraction, exits[forecast], first_hour=1), truth_fraction)
        spectra["energy_fraction_above"][forecast] = {
            column: {name: _finite_or_none(values[index].tolist()) for name, values in summary.items()}
            for index, column in enumerate(columns)
        }
    # Latitude bands: each trajectory's error per band (and its channel mean), averaged.
    bands = physics.labels["band"]
    latitude = {"bands": bands.tolist(), "labels": band_labels(bands), "lead_hours": lead_hours}
    for forecast in forecasts:
        values = _with_channel_mean(physics.of("latitude_band_rel_l2", forecast))  # (trajectory, column, band, lead)
        mean, standard_error = mean_with_standard_error(values)
        latitude.setdefault("rel_l2", {})[forecast] = {
            column: [_finite_or_none(band.tolist()) for band in mean[index]] for index, column in enumerate(columns)
        }
        latitude.setdefault("rel_l2_se", {})[forecast] = {
            column: [_finite_or_none(band.tolist()) for band in standard_error[index]]
            for index, column in enumerate(columns)
        }
    # The authors' metric, at the leads their example reports that this rollout reaches.
    their_leads = [lead for lead in AUTHORS_LEAD_HOURS if lead <= steps]
    authors = {"lead_hours": their_leads, "source": AUTHORS_METRIC_SOURCE, "mean": {}, "se": {}}
    for forecast in forecasts:
        mean, standard_error = mean_with_standard_error(physics.of("authors_pooled_rel_l2", forecast))  # (lead,)
        authors["mean"][forecast] = _finite_or_none([float(mean[lead - 1]) for lead in their_leads])
        authors["se"][forecast] = _finite_or_none([float(standard_error[lead - 1]) for lead in their_leads])
    return {
        "invariants": invariants,
        "stability": stabilities,
        "spectral_ratio": spectra,
        "latitude_bands": latitude,
        "authors_pooled_rel_l2": authors,
    }


def forecast_exits(physics: RolloutPhysics) -> dict[str, np.ndarray]:
    """Each forecast's exit lead per test trajectory (`evaluation.physics.exit_leads`), (trajectory,)."""
    energy = INVARIANTS.index("energy")
    truth_energy = physics.of("invariants", TRUTH)[:, energy, 1:]  # (trajectory, lead)
    return {
        forecast: exit_leads(physics.of("invariants", forecast)[:, energy, 1:], truth_energy)
        for forecast in physics.labels["forecast"].tolist()
    }


def stable_drifts(physics: RolloutPhysics, exits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each source's relative drift of the invariants, (trajectory, invariant, hour 0..N), a forecast's NaN from the
    lead at which its rollout left the stable range (`evaluation.physics.unstable_as_nan`)."""
    with np.errstate(invalid="ignore", over="ignore"):
        drift = relative_drift(physics.measures["invariants"])  # (source, trajectory, invariant, hour)
    return {
        source: drift[index] if source == TRUTH else unstable_as_nan(drift[index], exits[source], first_hour=0)
        for index, source in enumerate(physics.labels["source"].tolist())
    }


def band_labels(bands: np.ndarray) -> list[str]:
    """(band, 2) |latitude| ranges in degrees -> "75-90", ...: each band takes both hemispheres."""
    return [f"{low:g}-{high:g}" for low, high in bands]


def rollout_physics(results: dict, channels: list[str]) -> RolloutPhysics:
    """test_physics.npz's contents from the test stage's results, with the ratio of each forecast's mean spectrum
    to the truth's, per lead and degree."""
    measures = dict(results["physics"])
    spectra = measures["power_spectrum"]  # (source, lead, channel, degree), truth first
    measures["spectral_ratio"] = np.stack([spectral_ratio(forecast, spectra[0]) for forecast in spectra[1:]])
    steps = len(results["lead_hours"])
    labels = {
        "source": np.array(results["sources"]),
        "forecast": np.array(results["forecasts"]),
        "channel": np.array(channels),
        "invariant": np.array(INVARIANTS),
        "hour": np.arange(steps + 1),
        "lead": np.array(results["lead_hours"]),
        "band": np.array(results["latitude_bands"], dtype=float),
        "moment": np.array(MOMENTS),
        "degree": np.arange(spectra.shape[-1]),
    }
    return RolloutPhysics(labels, measures, int(results["band_limit"]))


def write_test_files(
    results: dict, channels: list[str], meta: dict, run_dir: str | Path
) -> tuple[TrajectoryErrors, RolloutPhysics, dict]:
    """Write test_errors.npz, test_physics.npz and test_metrics.json of one run (or evaluation) into ``run_dir``;
    return their contents."""
    errors = TrajectoryErrors(results["forecasts"], list(channels), results["lead_hours"], results["errors"])
    errors.save(run_dir)
    physics = rollout_physics(results, list(channels))
    physics.save(run_dir)
    record = metrics_record(errors, results["power_spectrum"], meta) | physics_record(physics, list(channels))
    (Path(run_dir) / METRICS_FILE).write_text(json.dumps(record, indent=2))
    return errors, physics, record


def write_run_report(
    results: dict, channels: list[str], meta: dict, run_dir: str | Path, with_plots: bool = True
) -> dict[str, Path]:
    """Write test_errors.npz, test_physics.npz, test_metrics.json and, ``with_plots``, the plots and the rollout
    animation of one run; returns the pictures' paths by name (for W&B: `evaluation.callbacks.log_images`)."""
    from evaluation.plots import (
        animate_rollout,
        plot_invariant_drift,
        plot_latitude_bands,
        plot_maps,
        plot_power_spectrum,
        plot_rollout_error,
        plot_spectral_ratio,
        plot_training_curves,
    )

    run_dir = Path(run_dir)
    errors, physics, record = write_test_files(results, channels, meta, run_dir)
    if not with_plots:
        return {}
    plots_dir = run_dir / PLOTS_DIR
    plots = {}
    label = meta.get("model", MODEL)
    baselines = [forecast for forecast in errors.forecasts if forecast != MODEL]

    def labelled(by_forecast: dict) -> dict:
        return {label if forecast == MODEL else forecast: values for forecast, values in by_forecast.items()}

    for metric in METRICS.values():
        if not metric.plotted:
            continue
        plots[f"rollout_{metric.name}"] = plots_dir / f"rollout_{metric.name}.png"
        standard_errors = record.get(f"{metric.name}_se", {})
        curves = labelled(
            {
                forecast: {metric.name: curve, f"{metric.name}_se": standard_errors.get(forecast, {})}
                for forecast, curve in record[metric.name].items()
            }
        )
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
        "invariant_drift": plots_dir / "invariant_drift.png",
        "latitude_bands": plots_dir / "latitude_bands.png",
        "spectral_ratio": plots_dir / "spectral_ratio.png",
    }
    example = results["example"]
    target, prediction = np.asarray(example["target"]), np.asarray(example["prediction"])  # (frames, channels, ...)
    frame_index = [example["frame_hours"].index(lead) for lead in example["lead_hours"]]
    plot_maps(target[frame_index], prediction[frame_index], example["lead_hours"], channels, plots["maps"])
    plot_power_spectrum({label: record["power_spectrum"]}, channels, plots["power_spectrum"])
    animate_rollout(target, prediction, channels, plots["rollout"], hours=example["frame_hours"])
    drifts = stable_drifts(physics, forecast_exits(physics))
    mean_drifts = {source: mean_over_kept(drift)[0].T for source, drift in drifts.items()}  # (hour, invariant)
    plot_invariant_drift(labelled(mean_drifts), plots["invariant_drift"], baselines=baselines)
    band_means = {
        forecast: physics.of("latitude_band_rel_l2", forecast).mean(axis=(0, 1)) for forecast in errors.forecasts
    }  # (band, lead): each trajectory's channel mean, averaged
    plot_latitude_bands(labelled(band_means), band_labels(physics.labels["band"]), plots["latitude_bands"], baselines)
    # One heat map per forecast and channel, in one figure: a row per forecast, a column per channel.
    ratios = physics.measures["spectral_ratio"]  # (forecast, lead, channel, degree)
    panels = {
        f"{label if forecast == MODEL else forecast}: {channel}": ratios[number, :, index]
        for number, forecast in enumerate(errors.forecasts)
        for index, channel in enumerate(channels)
    }
    plot_spectral_ratio(panels, plots["spectral_ratio"], band_edge=physics.band_limit)
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


def _with_channel_mean(values: np.ndarray) -> np.ndarray:
    """(trajectory, channel, ...) -> (trajectory, column, ...): each trajectory's mean over channels appended as the
    last column, `models.metrics.CHANNEL_MEAN`."""
    return np.concatenate([values, values.mean(axis=1, keepdims=True)], axis=1)
