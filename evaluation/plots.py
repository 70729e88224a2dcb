"""Figures of one run or of a sweep.

Built on `matplotlib.figure.Figure` rather than pyplot: no global state, no GUI backend, and the returned figures
can be logged to W&B by the caller and are freed with it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

ChannelCurves = Mapping[str, Sequence[float]]  # channel name (or "mean") -> rel_l2 per lead
# "model" and "persistence": mean rel_l2 per lead, or ChannelCurves; optional "lead_hours" (default 1, 2, ...)
RolloutCurves = Mapping[str, Sequence[float] | ChannelCurves]

MAP_KINDS = ("target", "prediction", "error")
# Meridians every 60 and parallels every 30 degrees, in radians: (lines, points, lon/lat).
_CURVE = np.linspace(-1, 1, 61)
GRATICULE = [
    np.stack([np.full_like(_CURVE, lon), _CURVE * math.pi / 2], axis=1) for lon in np.radians([-120, -60, 0, 60, 120])
] + [np.stack([_CURVE * math.pi, np.full_like(_CURVE, lat)], axis=1) for lat in np.radians([-60, -30, 0, 30, 60])]


def plot_maps(
    target: np.ndarray,
    prediction: np.ndarray,
    lead_hours: Sequence[float],
    channels: Sequence[str],
    path: str | Path,
) -> Figure:
    """Target, prediction and error maps of one test trajectory, to see where on the sphere the rollout goes wrong.

    target, prediction: (leads, channels, nlat, nlon) on the equiangular grid, latitude from +90 to -90 degrees
    inclusive, longitude from 0 to 2 pi exclusive. One row per channel and lead. Target and prediction share colour
    limits per channel, and the error's are symmetric and shared per channel, so that leads compare at a glance.
    """
    if prediction.shape != target.shape or target.shape[:2] != (len(lead_hours), len(channels)):
        raise ValueError(
            f"target {target.shape} and prediction {prediction.shape} must both be "
            f"(leads={len(lead_hours)}, channels={len(channels)}, nlat, nlon)"
        )
    num_leads, num_channels, nlat, nlon = target.shape
    lon_order, lon_edges, lat_edges = _mollweide_grid(nlat, nlon)
    num_rows = num_leads * num_channels
    # A fixed layout: matplotlib's constrained layout measures every tick of every map and took most of the time.
    fig = Figure(figsize=(12, 2.7 * num_rows))
    fig.subplots_adjust(left=0.01, right=0.84, bottom=0.2 / num_rows, top=1 - 0.25 / num_rows, wspace=0.04, hspace=0.3)
    for channel_index, channel in enumerate(channels):
        fields = {"target": target[:, channel_index], "prediction": prediction[:, channel_index]}  # (leads, nlat, nlon)
        fields["error"] = fields["prediction"] - fields["target"]
        low = min(fields["target"].min(), fields["prediction"].min())
        high = max(fields["target"].max(), fields["prediction"].max())
        error_limit = float(np.abs(fields["error"]).max()) or 1.0  # a zero error would give an empty colour range
        limits = {"target": (low, high), "prediction": (low, high), "error": (-error_limit, error_limit)}
        rows = []
        meshes = {}  # the last mesh of each kind: any serves a colour bar since limits are shared
        for lead_index, lead in enumerate(lead_hours):
            row = channel_index * num_leads + lead_index
            for column, kind in enumerate(MAP_KINDS):
                ax = fig.add_subplot(
                    num_rows, len(MAP_KINDS), row * len(MAP_KINDS) + column + 1, projection="mollweide"
                )
                meshes[kind] = ax.pcolormesh(
                    lon_edges,
                    lat_edges,
                    fields[kind][lead_index][::-1, lon_order],  # (nlat, nlon + 1), south to north, -pi to pi
                    cmap="RdBu_r" if kind == "error" else "viridis",
                    vmin=limits[kind][0],
                    vmax=limits[kind][1],
                )
                ax.set_title(f"{channel} +{lead:g} h: {kind}", fontsize="medium")
                # A coarse graticule as one line collection: grid lines drawn as ticks cost more than the map.
                ax.set_xticks([])
                ax.set_yticks([])
                ax.add_collection(LineCollection(GRATICULE, colors="black", linewidths=0.5, alpha=0.3), autolim=False)
            rows.append(ax.get_position())
        # Per channel, beside its rows: the error's colour bar, then the one target and prediction share.
        bottom, top = rows[-1].y0, rows[0].y1
        for left, kind, label in ((0.855, "error", "error"), (0.925, "target", "target, prediction")):
            colorbar = fig.colorbar(meshes[kind], cax=fig.add_axes((left, bottom, 0.012, top - bottom)))
            colorbar.set_label(f"{channel}: {label}")
    return _save(fig, path)


def plot_rollout_error(curves: Mapping[str, RolloutCurves], path: str | Path, title: str) -> Figure:
    """Error against lead time, to see how fast each model drifts and from when it falls behind persistence.

    `curves` maps a label (run or job) to {"model": ..., "persistence": ..., "lead_hours": optional}, where model and
    persistence are either the mean rel_l2 per lead or the per-channel mapping of test_metrics.json's "rel_l2"
    block; the latter gives one subplot per channel. Each distinct persistence curve is drawn once: persistence is
    the same for every model trained on the same data.
    """
    if not curves:
        raise ValueError("no curves to plot")
    by_label = {
        label: (_by_channel(curve["model"]), _by_channel(curve["persistence"]), curve.get("lead_hours"))
        for label, curve in curves.items()
    }
    panel_names = list(dict.fromkeys(name for model, _, _ in by_label.values() for name in model))
    fig = Figure(figsize=(max(6.5, 4.5 * len(panel_names)), 4))
    _fixed_margins(fig, top_inches=0.65)  # room for the suptitle
    axes = fig.subplots(1, len(panel_names), squeeze=False)[0]
    for ax, name in zip(axes, panel_names, strict=True):
        drawn_persistence: list[np.ndarray] = []  # (2, leads): lead hours and values of each curve drawn
        plotted_values = []
        for colour_index, (label, (model, persistence, lead_hours)) in enumerate(by_label.items()):
            if name not in model:
                continue
            leads = np.asarray(lead_hours if lead_hours is not None else np.arange(1, len(model[name]) + 1), float)
            colour = f"C{colour_index % 10}"
            ax.plot(leads, model[name], color=colour, label=label)
            plotted_values.append(model[name])
            reference = np.stack([leads, persistence[name]])
            if any(drawn.shape == reference.shape and np.allclose(drawn, reference) for drawn in drawn_persistence):
                continue
            first = not drawn_persistence
            ax.plot(
                leads,
                persistence[name],
                color="black" if first else colour,
                linestyle="--",
                label="persistence" if first else f"persistence ({label})",
            )
            drawn_persistence.append(reference)
            plotted_values.append(persistence[name])
        if _spans_over_a_decade(np.concatenate(plotted_values)):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("lead time [h]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative L2 error")
    # One legend for all panels: a label missing from the first panel (no such channel) still gets listed.
    legend_entries = {
        label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    axes[0].legend(list(legend_entries.values()), list(legend_entries), fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def plot_training_curves(metrics_csv: str | Path, path: str | Path) -> Figure:
    """Losses and validation error against step from Lightning's CSVLogger file, to judge convergence and overfitting.

    The validation error is drawn against persistence (dashed): a model above that line has learnt nothing useful.
    """
    series = _read_sparse_columns(Path(metrics_csv))
    fig = Figure(figsize=(10, 3.8))
    _fixed_margins(fig, top_inches=0.3)
    loss_ax, error_ax = fig.subplots(1, 2)
    for column in ("train/loss", "val/loss"):
        if column in series:
            loss_ax.plot(series[column][:, 0], series[column][:, 1], label=column)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    if "val/rel_l2" in series:
        error_ax.plot(series["val/rel_l2"][:, 0], series["val/rel_l2"][:, 1], marker=".", label="val/rel_l2")
    if "val/rel_l2_persistence" in series:
        persistence = series["val/rel_l2_persistence"]
        error_ax.plot(persistence[:, 0], persistence[:, 1], color="black", linestyle="--", label="persistence")
    error_ax.set_ylabel("relative L2 error")
    for ax in (loss_ax, error_ax):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def _mollweide_grid(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column order and cell edges (radians) that put the grid on Mollweide axes, whose longitude runs -pi to pi.

    Longitudes are shifted to [-pi, pi) and sorted; the -pi column is repeated at +pi so the map has no gap, and
    edges are clipped to the map's domain so that no cell wraps round. Latitudes ascend: fields are flipped to match.
    """
    shifted = (2 * math.pi * np.arange(nlon) / nlon + math.pi) % (2 * math.pi) - math.pi  # (nlon,)
    order = np.argsort(shifted)
    lon_centres = np.append(shifted[order], math.pi)  # (nlon + 1,)
    lat_centres = np.linspace(-math.pi / 2, math.pi / 2, nlat)  # (nlat,)
    return np.append(order, order[0]), _clipped_edges(lon_centres, math.pi), _clipped_edges(lat_centres, math.pi / 2)


def _clipped_edges(centres: np.ndarray, limit: float) -> np.ndarray:
    """Edges halfway between evenly spaced centres, clipped to [-limit, limit]: (n,) -> (n + 1,)."""
    half_step = (centres[1] - centres[0]) / 2
    return np.clip(np.append(centres - half_step, centres[-1] + half_step), -limit, limit)


def _by_channel(values: Sequence[float] | ChannelCurves) -> dict[str, np.ndarray]:
    """A bare sequence is the channel mean, as the sweep comparison passes it."""
    if isinstance(values, Mapping):
        return {name: np.asarray(per_lead, dtype=float) for name, per_lead in values.items()}
    return {"mean": np.asarray(values, dtype=float)}


def _spans_over_a_decade(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.size > 0 and positive.max() > 10 * positive.min()


def _read_sparse_columns(metrics_csv: Path) -> dict[str, np.ndarray]:
    """Each logged column as (points, 2) [step, value]: the CSVLogger leaves unlogged columns of a row empty."""
    points: dict[str, list[tuple[float, float]]] = {}
    with metrics_csv.open(newline="") as file:
        for row in csv.DictReader(file):
            if not row.get("step"):
                continue
            for column, value in row.items():
                if column not in ("step", "epoch") and value:
                    points.setdefault(column, []).append((float(row["step"]), float(value)))
    return {column: np.array(pairs) for column, pairs in points.items()}


def _fixed_margins(fig: Figure, top_inches: float) -> None:
    """Margins in inches for a row of curve panels: matplotlib's constrained layout measures every tick label of
    every axis (log axes have many) and took longer than drawing the figure."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.8 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - top_inches / height, wspace=0.25
    )


def _save(fig: Figure, path: str | Path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return fig
