"""The sweep's figures: the rollout error of every configuration and baseline, and each job's power spectrum."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.sweep.jobs import METRIC

ROLLOUT_FIGURE = "rollout_comparison.png"
SPECTRUM_FIGURE = "power_spectrum_comparison.png"


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
