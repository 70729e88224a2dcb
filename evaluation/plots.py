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
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sphere import INVARIANTS

ChannelCurves = Mapping[str, Sequence[float | None]]  # channel name (or "mean") -> value per lead

BASELINE_LINESTYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))

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
    num_leads, _, nlat, nlon = target.shape
    lon_order, lon_edges, lat_edges = _mollweide_grid(nlat, nlon)
    layout = _PanelLayout(width=12, rows_per_block=num_leads, blocks=len(channels))
    fig = Figure(figsize=(layout.width, layout.height))
    for channel_index, channel in enumerate(channels):
        fields = _map_fields(target[:, channel_index], prediction[:, channel_index])  # kind -> (leads, nlat, nlon)
        meshes = {}  # one mesh of each kind: any serves a colour bar since limits are shared
        for lead_index, lead in enumerate(lead_hours):
            for column, kind in enumerate(MAP_KINDS):
                ax = fig.add_axes(layout.panel(channel_index, lead_index, column), projection="mollweide")
                meshes[kind] = ax.pcolormesh(
                    lon_edges,
                    lat_edges,
                    fields[kind][lead_index][::-1, lon_order],  # (nlat, nlon + 1), south to north, -pi to pi
                    **fields["style"][kind],
                )
                ax.set_title(f"{channel} +{lead:g} h: {kind}", fontsize="medium")
                # A coarse graticule as one line collection: grid lines drawn as ticks cost more than the map.
                ax.set_xticks([])
                ax.set_yticks([])
                ax.add_collection(LineCollection(GRATICULE, colors="black", linewidths=0.5, alpha=0.3), autolim=False)
        layout.colour_bars(fig, channel_index, channel, meshes)
    return _save(fig, path)


def animate_rollout(
    target: np.ndarray,
    prediction: np.ndarray,
    channels: Sequence[str],
    path: str | Path,
    hours: Sequence[int],
    fps: int = 4,
) -> Path:
    """A GIF of truth, prediction and error over a test rollout, one frame per kept lead hour, to see in seconds
    when and where a rollout goes wrong.

    target, prediction: (frames, channels, nlat, nlon) of one trajectory, latitude from north to south, at lead
    ``hours``. Colour limits are fixed over the rollout per channel (shared by truth and
    prediction; symmetric for the error), so growth and decay show. Plain latitude-longitude panels: a frame draws
    in a fraction of a Mollweide map's time. The titles and colour bars are drawn once; each frame redraws only its
    images and hour on that background (matplotlib's blitting): 21 frames in a quarter of the time of full draws.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if prediction.shape != target.shape or target.shape[:2] != (len(hours), len(channels)):
        raise ValueError(
            f"target {target.shape} and prediction {prediction.shape} must both be (frames={len(hours)}, "
            f"channels={len(channels)}, nlat, nlon)"
        )
    layout = _PanelLayout(width=10, rows_per_block=1, blocks=len(channels), top=0.45)
    fig = Figure(figsize=(layout.width, layout.height), dpi=70)
    canvas = FigureCanvasAgg(fig)
    images = []  # (image, field of every lead)
    for channel_index, channel in enumerate(channels):
        fields = _map_fields(target[:, channel_index], prediction[:, channel_index])
        meshes = {}
        for column, kind in enumerate(MAP_KINDS):
            ax = fig.add_axes(layout.panel(channel_index, 0, column))
            meshes[kind] = ax.imshow(
                fields[kind][0],
                extent=(0, 360, -90, 90),
                aspect="auto",
                interpolation="nearest",
                animated=True,
                **fields["style"][kind],
            )
            ax.set_title(f"{channel}: {kind}", fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
            images.append((meshes[kind], fields[kind]))
        layout.colour_bars(fig, channel_index, channel, meshes)
    title = fig.suptitle("", animated=True)
    canvas.draw()  # everything but the animated artists
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for step, hour in enumerate(hours):
        canvas.restore_region(background)
        for image, field in images:
            image.set_data(field[step])
            fig.draw_artist(image)
        title.set_text(f"+{hour} h")
        fig.draw_artist(title)
        frames.append(Image.fromarray(np.array(canvas.buffer_rgba())))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def plot_rollout_error(
    curves: Mapping[str, Mapping[str, ChannelCurves]],
    path: str | Path,
    title: str,
    baselines: Sequence[str] = (),
    metric: str = "rel_l2",
    ylabel: str = "relative L2 error",
) -> Figure:
    """Error against lead time with standard-error bands, to see how fast each model drifts and from when it falls
    behind a baseline.

    `curves` maps a label (a run's model, a configuration, a baseline) to {metric: {panel: per lead},
    metric + "_se": {panel: per lead}}, the blocks of test_metrics.json for one forecast; the standard error is
    optional and None where undefined. Leads are 1, 2, ... hours. One panel per channel (or "mean"). Every curve with
    a standard error has a band of +-1 standard error; labels in `baselines` are drawn in grey with a line style
    each, the rest in colour.
    """
    if not curves:
        raise ValueError("no curves to plot")
    panel_names = list(dict.fromkeys(name for curve in curves.values() for name in curve[metric]))
    fig = Figure(figsize=(max(6.5, 4.5 * len(panel_names)), 4))
    _fixed_margins(fig, top_inches=0.65)  # room for the suptitle
    axes = fig.subplots(1, len(panel_names), squeeze=False)[0]
    styles = _curve_styles(list(curves), baselines)
    for ax, name in zip(axes, panel_names, strict=True):
        plotted_values = []
        for label, curve in curves.items():
            if name not in curve[metric]:
                continue
            values = _as_floats(curve[metric][name])
            leads = np.arange(1, len(values) + 1)
            ax.plot(leads, values, label=label, **styles[label])
            plotted_values.append(values)
            standard_error = curve.get(f"{metric}_se", {}).get(name)
            if standard_error is not None:
                standard_error = _as_floats(standard_error)
                band = {"color": styles[label]["color"], "alpha": 0.1 if label in baselines else 0.2, "linewidth": 0}
                ax.fill_between(leads, values - standard_error, values + standard_error, **band)
        if _spans_over_a_decade(np.concatenate(plotted_values)):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("lead time [h]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    # One legend for all panels: a label missing from the first panel (no such channel) still gets listed.
    legend_entries = {
        label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    axes[0].legend(list(legend_entries.values()), list(legend_entries), fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def plot_power_spectrum(spectra: Mapping[str, Mapping], channels: Sequence[str], path: str | Path) -> Figure:
    """Energy per spherical-harmonic degree l of prediction (solid) and truth (dashed) at a few leads: energy piling
    up at high degrees is a rollout blowing up, energy missing there is over-smoothing.

    `spectra` maps a label (a run, a sweep job) to test_metrics.json's "power_spectrum" block: {"lead_hours": [...],
    "target": {channel: [[energy per degree] per lead]}, "prediction": likewise}. One row per label, one panel per
    channel; log energy axes.
    """
    if not spectra:
        raise ValueError("no spectra to plot")
    rows = len(spectra)
    fig = Figure(figsize=(4.2 * len(channels), 3.2 * rows + 0.4))
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.9 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.35 / height, wspace=0.3, hspace=0.45
    )
    axes = fig.subplots(rows, len(channels), squeeze=False)
    for row, (label, spectrum) in enumerate(spectra.items()):
        for ax, channel in zip(axes[row], channels, strict=True):
            for lead_index, lead in enumerate(spectrum["lead_hours"]):
                colour = f"C{lead_index % 10}"
                for kind, linestyle, name in (("prediction", "-", "prediction"), ("target", "--", "truth")):
                    energy = _as_floats(spectrum[kind][channel][lead_index])
                    ax.plot(
                        np.arange(len(energy)), energy, color=colour, linestyle=linestyle, label=f"+{lead} h {name}"
                    )
            ax.set_yscale("log")
            ax.set_title(f"{label}: {channel}", fontsize="medium")
            ax.set_xlabel("degree l")
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("energy per degree (normalised)")
    axes[0][0].legend(fontsize="x-small", ncols=2)
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


def plot_invariant_drift(drifts: Mapping[str, np.ndarray], path: str | Path, baselines: Sequence[str] = ()) -> Figure:
    """Relative drift of mass, energy and potential enstrophy against lead time, one panel per invariant: the truth
    loses energy and enstrophy to the solver's hyperdiffusion and keeps its mass; a forecast that gains either, or
    moves the mass, is unphysical whatever its error.

    `drifts` maps a forecast (or "truth") to its mean drift over the rollouts still stable at each lead, (lead 0..N,
    invariant) with the invariants of `sphere.INVARIANTS` in order (`evaluation.physics.relative_drift`). Non-finite
    values (no rollout left stable) leave gaps. Past a drift of 100% the axis turns symmetric-logarithmic, linear
    within 1%.
    """
    if not drifts:
        raise ValueError("no drifts to plot")
    fig = Figure(figsize=(4.5 * len(INVARIANTS), 3.8))
    _fixed_margins(fig, top_inches=0.35)
    axes = fig.subplots(1, len(INVARIANTS))
    styles = _curve_styles(list(drifts), baselines)
    for index, (ax, invariant) in enumerate(zip(axes, INVARIANTS, strict=True)):
        values = {
            label: np.where(np.isfinite(drift[:, index]), drift[:, index], np.nan) for label, drift in drifts.items()
        }
        for label, curve in values.items():
            ax.plot(np.arange(len(curve)), curve, label=label, **styles[label])
        if np.nanmax(np.abs(np.concatenate(list(values.values()))), initial=0.0) > 1:
            ax.set_yscale("symlog", linthresh=1e-2)
        else:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))  # short tick labels for drifts of 1e-8
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(invariant.replace("_", " "))
        ax.set_xlabel("lead time [h]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative drift from lead 0")
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def plot_spectral_ratio(ratios: Mapping[str, np.ndarray], path: str | Path, band_edge: int) -> Figure:
    """Predicted over true energy per degree, lead against degree, one heat map per forecast: red where a forecast
    piles energy up, blue where it smooths it away, white where it has the truth's.

    `ratios` maps a forecast to its ratio (lead 1..N, degree 0..L-1) for one channel or the channel mean
    (`evaluation.physics.spectral_ratio`). The colour scale is logarithmic, centred on 1 and shared by the panels, up
    to a factor of 100 either way; NaN (no true energy) stays blank. A dashed line marks ``band_edge``, the data's
    band: the truth has no energy from that degree on.
    """
    if not ratios:
        raise ValueError("no spectral ratios to plot")
    finite = np.concatenate([ratio[np.isfinite(ratio) & (ratio > 0)] for ratio in ratios.values()])
    limit = float(np.clip(np.exp(np.abs(np.log(finite)).max()), 1.1, 100.0)) if finite.size else 10.0
    norm = LogNorm(vmin=1 / limit, vmax=limit)
    columns = min(len(ratios), 3)
    rows = math.ceil(len(ratios) / columns)
    fig = Figure(figsize=(4.2 * columns + 1.2, 3.2 * rows + 0.4))
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.8 / width, right=1 - 1.3 / width, bottom=0.55 / height, top=1 - 0.35 / height, wspace=0.3, hspace=0.45
    )
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, ratio) in zip(axes, ratios.items(), strict=False):
        leads, degrees = ratio.shape
        mesh = ax.pcolormesh(
            np.arange(degrees + 1) - 0.5,
            np.arange(leads + 1) + 0.5,
            np.ma.masked_invalid(np.where(ratio > 0, ratio, np.nan)),
            cmap="RdBu_r",
            norm=norm,
        )
        ax.axvline(band_edge - 0.5, color="black", linestyle="--", linewidth=1)
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("degree l")
        ax.set_ylabel("lead time [h]")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(ratios) :]:
        ax.set_visible(False)
    colorbar = fig.colorbar(mesh, cax=fig.add_axes((1 - 1.05 / width, 0.55 / height, 0.15 / width, 1 - 0.9 / height)))
    colorbar.set_label("predicted / true energy")
    return _save(fig, path)


def plot_latitude_bands(
    errors: Mapping[str, np.ndarray], band_labels: Sequence[str], path: str | Path, baselines: Sequence[str] = ()
) -> Figure:
    """Relative L2 error against lead time in each latitude band, one panel per band from the poles to the equator:
    a model that treats latitude as periodic errs near the poles, which the global error, weighted by area towards
    low latitudes, hides.

    `errors` maps a forecast to its mean error over trajectories, (band, lead 1..N)
    (`sphere.diagnostics.latitude_band_relative_l2`); `band_labels` names the bands in that order (e.g. "75-90").
    """
    if not errors:
        raise ValueError("no latitude-band errors to plot")
    columns = min(len(band_labels), 3)
    rows = math.ceil(len(band_labels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.4))
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.8 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.35 / height, wspace=0.3, hspace=0.45
    )
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    styles = _curve_styles(list(errors), baselines)
    for band, (ax, band_label) in enumerate(zip(axes, band_labels, strict=False)):
        for label, error in errors.items():
            ax.plot(np.arange(1, error.shape[1] + 1), error[band], label=label, **styles[label])
        ax.set_title(f"|latitude| {band_label} deg", fontsize="medium")
        ax.set_xlabel("lead time [h]")
        ax.grid(alpha=0.3)
    for ax in axes[len(band_labels) :]:
        ax.set_visible(False)
    if _spans_over_a_decade(np.concatenate([error.ravel() for error in errors.values()])):
        axes[0].set_yscale("log")  # shared by every panel
    for row in range(rows):
        axes[row * columns].set_ylabel("relative L2 error")
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def plot_band_profile(
    errors: Mapping[str, np.ndarray], band_labels: Sequence[str], path: str | Path, lead: int
) -> Figure:
    """Relative L2 error per latitude band at one lead, poles to equator, one line per configuration with
    +-1 standard error bars: where on the sphere each errs, side by side.

    `errors` maps a label to (band, 2): the mean error and its standard error (NaN: none) in the order of
    `band_labels` (e.g. "75-90").
    """
    if not errors:
        raise ValueError("no latitude-band errors to plot")
    fig = Figure(figsize=(6.5, 4))
    _fixed_margins(fig, top_inches=0.35)
    ax = fig.subplots()
    positions = np.arange(len(band_labels))
    for index, (label, values) in enumerate(errors.items()):
        ax.errorbar(positions, values[:, 0], yerr=values[:, 1], label=label, color=f"C{index % 10}", capsize=3)
    if _spans_over_a_decade(np.concatenate([values[:, 0] for values in errors.values()])):
        ax.set_yscale("log")
    ax.set_xticks(positions, [f"{band_label}" for band_label in band_labels])
    ax.set_xlabel("|latitude| band [deg], poles to equator")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"latitude bands at +{lead} h (+- 1 SE)")
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


def _as_floats(values: Sequence[float | None]) -> np.ndarray:
    """A per-lead list as floats; None (undefined) becomes NaN, which plots as a gap."""
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def _curve_styles(labels: Sequence[str], baselines: Sequence[str]) -> dict[str, dict]:
    """Models in the colour cycle, baselines in grey with a line style each, so that the two never mix up."""
    styles, models = {}, 0
    for label in labels:
        if label in baselines:
            index = list(baselines).index(label)
            styles[label] = {"color": "0.35", "linestyle": BASELINE_LINESTYLES[index % len(BASELINE_LINESTYLES)]}
        else:
            styles[label] = {"color": f"C{models % 10}"}
            models += 1
    return styles


def _map_fields(target: np.ndarray, prediction: np.ndarray) -> dict:
    """Target, prediction and error of one channel (leads, nlat, nlon) with their colour styles: target and
    prediction share limits, the error's are symmetric."""
    fields = {"target": target, "prediction": prediction, "error": prediction - target}
    low, high = min(target.min(), prediction.min()), max(target.max(), prediction.max())
    error_limit = float(np.abs(fields["error"]).max()) or 1.0  # a zero error would give an empty colour range
    fields["style"] = {
        "target": {"cmap": "viridis", "vmin": low, "vmax": high},
        "prediction": {"cmap": "viridis", "vmin": low, "vmax": high},
        "error": {"cmap": "RdBu_r", "vmin": -error_limit, "vmax": error_limit},
    }
    return fields


class _PanelLayout:
    """Positions, in inches turned into figure fractions, of map panels in three columns (target, prediction,
    error): one block of rows per channel, each block followed by horizontal colour bars. Horizontal bars below
    the maps leave their tick labels and label the full width, so that neither overlaps the other; a fixed
    layout, as constrained layout measures every map and took most of the drawing time."""

    MARGIN, GAP, TITLE, BAR_BLOCK, BAR = 0.15, 0.15, 0.35, 1.0, 0.12

    def __init__(self, width: float, rows_per_block: int, blocks: int, top: float = 0.1) -> None:
        self.width, self.rows_per_block, self.top = width, rows_per_block, top
        self.column_width = (width - 2 * self.MARGIN - 2 * self.GAP) / len(MAP_KINDS)
        self.map_height = self.column_width / 2  # the maps' 2:1 aspect
        self.block_height = rows_per_block * (self.map_height + self.TITLE) + self.BAR_BLOCK
        self.height = top + blocks * self.block_height

    def _box(self, left: float, bottom: float, width: float, height: float) -> tuple[float, float, float, float]:
        return (left / self.width, bottom / self.height, width / self.width, height / self.height)

    def panel(self, block: int, row: int, column: int) -> tuple[float, float, float, float]:
        row_top = self.height - self.top - block * self.block_height - row * (self.map_height + self.TITLE)
        left = self.MARGIN + column * (self.column_width + self.GAP)
        return self._box(left, row_top - self.TITLE - self.map_height, self.column_width, self.map_height)

    def colour_bars(self, fig: Figure, block: int, channel: str, meshes: Mapping) -> None:
        """Below the block: one bar under the target and prediction columns, one under the error column."""
        bottom = self.height - self.top - (block + 1) * self.block_height + self.BAR_BLOCK - 0.2 - self.BAR
        inset = 0.4  # the bar is narrower than its columns: end tick labels stay within them
        spans = {"target": (0, 2, "target, prediction"), "error": (2, 3, "error")}
        for kind, (first, last, label) in spans.items():
            left = self.MARGIN + first * (self.column_width + self.GAP) + inset
            width = (last - first) * (self.column_width + self.GAP) - self.GAP - 2 * inset
            colorbar = fig.colorbar(
                meshes[kind], cax=fig.add_axes(self._box(left, bottom, width, self.BAR)), orientation="horizontal"
            )
            colorbar.ax.xaxis.set_major_locator(MaxNLocator(5 if kind == "error" else 7))
            colorbar.set_label(f"{channel}: {label}")


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
