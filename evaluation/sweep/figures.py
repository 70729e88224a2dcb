"""The sweep's figures: the rollout error of every configuration and baseline, each job's power spectrum, and the
physics per configuration: invariant drift against lead, latitude-band errors at the last reported lead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evaluation.physics import mean_over_kept
from evaluation.sweep.jobs import METRIC
from evaluation.sweep.physics import PhysicsReport
from evaluation.sweep.quantities import configuration_summary, latitude_band, physics
from models import MODEL, TRUTH

ROLLOUT_FIGURE = "rollout_comparison.png"
SPECTRUM_FIGURE = "power_spectrum_comparison.png"
DRIFT_FIGURE = "invariant_drift_comparison.png"
BANDS_FIGURE = "latitude_bands_comparison.png"


def write_figures(
    sweep_dir: Path,
    completed: list[dict[str, Any]],
    configurations: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    channels: list[str],
) -> dict[str, Path]:
    """Draw the figures into the sweep folder; return their paths by title (none without completed jobs)."""
    if not completed:
        return {}
    # Imported here so that a sweep without completed jobs does not pull in matplotlib.
    from evaluation.plots import plot_power_spectrum, plot_rollout_error

    figures = {"rollout error against lead time": sweep_dir / ROLLOUT_FIGURE}
    curves = {config["label"]: config for config in configurations} | {row["label"]: row for row in baselines}
    plot_rollout_error(
        curves,
        figures["rollout error against lead time"],
        title=f"{METRIC} (+- 1 SE): {sweep_dir.name}",
        baselines=[row["label"] for row in baselines],
    )
    spectra = {
        job["label"]: job["metrics"]["power_spectrum"] for job in completed if "power_spectrum" in job["metrics"]
    }
    if spectra:
        figures["power spectrum per job"] = sweep_dir / SPECTRUM_FIGURE
        plot_power_spectrum(spectra, channels, figures["power spectrum per job"])
    return figures


def write_physics_figures(
    folder: Path, configurations: list[dict[str, Any]], report: PhysicsReport | None
) -> dict[str, Path]:
    """Draw the physics figures into the report's folder; return their paths by title (none without physics)."""
    if report is None:
        return {}
    from evaluation.plots import plot_band_profile, plot_invariant_drift

    drifts = {}  # label -> (hour 0..N, invariant): the mean over seeds of each job's mean over trajectories
    for config in configurations:
        if all(physics(job) is not None for job in config["jobs"]):
            drifts[config["label"]] = _mean_drift(config["jobs"], MODEL)
    first = next(job for config in configurations for job in config["jobs"] if physics(job) is not None)
    drifts["truth"] = _mean_drift([first], TRUTH)
    figures = {"invariant drift per configuration": folder / DRIFT_FIGURE}
    plot_invariant_drift(drifts, figures["invariant drift per configuration"], baselines=["truth"])
    if report.leads:
        lead = report.leads[-1]
        profiles = {}
        for config in configurations:
            summaries = [configuration_summary(config, latitude_band(band), MODEL, lead) for band in report.bands]
            if all(summary is not None for summary in summaries):
                profiles[config["label"]] = np.array(
                    [[mean, np.nan if standard_error is None else standard_error] for mean, standard_error in summaries]
                )
        if profiles:
            figures[f"latitude bands at +{lead} h"] = folder / BANDS_FIGURE
            plot_band_profile(profiles, report.bands, figures[f"latitude bands at +{lead} h"], lead)
    return figures


def _mean_drift(jobs: list[dict[str, Any]], source: str) -> np.ndarray:
    """(hour 0..N, invariant) over the hours every job reached: each job's mean over its rollouts still stable
    (`evaluation.sweep.quantities.physics`), then the mean over jobs."""
    hours = min(physics(job)["drift"].shape[-1] for job in jobs)
    per_job = [
        mean_over_kept(physics(job)["drift"][physics(job)["sources"].index(source), :, :, :hours])[0] for job in jobs
    ]  # (invariant, hour) each
    return np.mean(per_job, axis=0).T
