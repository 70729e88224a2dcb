"""The figures render to non-empty PNGs from the inputs the training and report code pass in."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

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

CHANNELS = ["geopotential", "vorticity", "divergence"]


def test_plot_maps_writes_png_and_returns_figure(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.standard_normal((1, 3, 8, 16))  # (leads, channels, nlat, nlon): one lead keeps the test quick
    prediction = target + 0.1 * rng.standard_normal(target.shape)
    path = tmp_path / "nested" / "maps.png"

    fig = plot_maps(target, prediction, [5], CHANNELS, path)

    assert isinstance(fig, Figure)
    assert path.stat().st_size > 0
    titles = [ax.get_title() for ax in fig.axes]
    assert "vorticity +5 h: error" in titles
    assert sum(ax.name == "mollweide" for ax in fig.axes) == 3 * 3  # channels x (target, prediction, error)


def test_plot_maps_rejects_mismatched_shapes(tmp_path):
    target = np.zeros((2, 3, 8, 16))
    with pytest.raises(ValueError):
        plot_maps(target, target[:1], [1, 5], CHANNELS, tmp_path / "maps.png")


def drawn_tick_labels(axis):
    """The tick labels inside the axis' range: the locator also places ticks beyond it, which are not drawn."""
    low, high = sorted(axis.get_view_interval())
    return [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]


def test_plot_maps_colour_bar_labels_overlap_no_tick_labels(tmp_path):
    """Geopotential's long tick labels (1e5 and more) and vorticity's scale once pushed labels onto ticks."""
    target = np.stack([1e5 + 300 * np.ones((8, 16)), 1e-5 * np.ones((8, 16)), np.zeros((8, 16))])[None]
    prediction = target * 1.01
    fig = plot_maps(target, prediction, [1], CHANNELS, tmp_path / "maps.png")

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    colour_bars = [ax for ax in fig.axes if ax.name != "mollweide"]
    assert len(colour_bars) == 2 * len(CHANNELS)
    axes = [axis for ax in colour_bars for axis in (ax.xaxis, ax.yaxis)]
    labels = [axis.label.get_window_extent(renderer) for axis in axes if axis.label.get_text()]
    assert len(labels) == len(colour_bars)
    ticks = [
        text.get_window_extent(renderer)
        for axis in axes
        for text in [*drawn_tick_labels(axis), axis.get_offset_text()]
        if text.get_visible() and text.get_text()
    ]
    maps = [ax.get_window_extent(renderer) for ax in fig.axes if ax.name == "mollweide"]
    figure = fig.bbox
    for label in labels:
        assert not any(label.overlaps(tick) for tick in ticks)
        assert not any(label.overlaps(box) for box in maps)
        assert figure.x0 <= label.x0 and label.x1 <= figure.x1
    for tick in ticks:
        assert figure.x0 <= tick.x0 and tick.x1 <= figure.x1, "a tick label runs off the figure"


def test_plot_rollout_error_bands_for_models_grey_baselines(tmp_path):
    curves = {
        "sfno": {"rel_l2": {"mean": [0.01, 0.05, 0.3]}, "rel_l2_se": {"mean": [0.001, 0.01, None]}},
        "persistence": {"rel_l2": {"mean": [0.1, 0.2, 0.4]}, "rel_l2_se": {"mean": [0.01, 0.02, 0.03]}},
        "linear": {"rel_l2": {"mean": [0.02, 0.04, 0.08]}},
    }
    path = tmp_path / "rollout.png"

    fig = plot_rollout_error(curves, path, title="run", baselines=["persistence", "linear"])

    assert path.stat().st_size > 0
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["sfno", "persistence", "linear"]
    assert lines["persistence"].get_linestyle() == "--" and lines["linear"].get_linestyle() == ":"
    assert len(ax.collections) == 2, "standard-error bands of the model and persistence; linear has none"
    band = ax.collections[0].get_paths()[0].vertices
    assert np.isclose(band[:, 1].max(), 0.06)  # 0.05 + 0.01 at 2 h; the undefined SE at 3 h leaves a gap
    assert ax.get_yscale() == "log"  # 0.01 to 0.4 spans more than a decade


def test_plot_rollout_error_per_channel_panels(tmp_path):
    run = {"rel_l2": {name: [0.1, 0.2] for name in [*CHANNELS, "mean"]}}

    fig = plot_rollout_error({"run": run}, tmp_path / "rollout.png", title="run")

    assert [ax.get_title() for ax in fig.axes] == [*CHANNELS, "mean"]
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)


def test_plot_power_spectrum_one_row_per_job_log_energy(tmp_path):
    energy = [[1.0, 0.1, 0.01, 0.001], [1.0, 0.2, 0.05, 0.01]]  # per lead, per degree
    spectrum = {
        "lead_hours": [1, 5],
        "target": dict.fromkeys(CHANNELS, energy),
        "prediction": dict.fromkeys(CHANNELS, energy),
    }
    path = tmp_path / "spectrum.png"

    fig = plot_power_spectrum({"#0 sfno": spectrum, "#1 fno": spectrum}, CHANNELS, path)

    assert path.stat().st_size > 0
    assert len(fig.axes) == 2 * len(CHANNELS)
    assert fig.axes[0].get_title() == "#0 sfno: geopotential"
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.axes[0].get_lines()) == 2 * 2  # (prediction, truth) x leads


def test_animate_rollout_writes_a_gif_with_a_frame_per_kept_lead(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.standard_normal((3, 3, 8, 16))  # (frames, channels, nlat, nlon)
    path = tmp_path / "plots" / "rollout.gif"

    assert animate_rollout(target, target + 0.1, CHANNELS, path, hours=[1, 50, 100]) == path

    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 3


def test_plot_training_curves_reads_sparse_csv(tmp_path):
    metrics_csv = tmp_path / "metrics.csv"
    metrics_csv.write_text(
        "epoch,step,train/loss,val/loss,val/rel_l2,val/rel_l2_persistence\n"
        "0,9,0.9,,,\n"
        "0,19,0.5,,,\n"
        "0,19,,0.6,0.3,0.5\n"
        "1,29,0.3,,,\n"
        "1,39,,0.4,0.2,0.5\n"
    )
    path = tmp_path / "curves.png"

    fig = plot_training_curves(metrics_csv, path)

    assert path.stat().st_size > 0
    loss_ax, error_ax = fig.axes
    train_line, val_line = loss_ax.get_lines()
    np.testing.assert_array_equal(train_line.get_xdata(), [9, 19, 29])
    np.testing.assert_array_equal(val_line.get_ydata(), [0.6, 0.4])
    assert [line.get_label() for line in error_ax.get_lines()] == ["val/rel_l2", "persistence"]


def test_plot_invariant_drift_one_panel_per_invariant_gaps_for_a_blow_up(tmp_path):
    leads = np.arange(6)[:, None]  # (lead 0..5, invariant)
    truth = np.hstack([np.zeros((6, 1)), -1e-3 * leads, -5e-3 * leads])
    blown_up = 10.0**leads * np.ones((6, 3))
    blown_up[4:] = np.inf
    path = tmp_path / "drift.png"
    fig = plot_invariant_drift({"truth": truth, "model": blown_up, "persistence": 0 * truth}, path, ["persistence"])
    assert path.stat().st_size > 0
    assert [ax.get_title() for ax in fig.axes] == ["mass", "energy", "potential enstrophy"]
    assert fig.axes[1].get_yscale() == "symlog"


def test_plot_spectral_ratio_a_heat_map_per_forecast_centred_on_one(tmp_path):
    ratio = np.exp(np.random.default_rng(0).standard_normal((4, 8)))  # (lead, degree)
    ratio[:, 7] = np.nan  # no true energy there
    path = tmp_path / "ratio.png"
    fig = plot_spectral_ratio({"model": ratio, "linear": 1 / ratio}, path, band_edge=6)
    assert path.stat().st_size > 0
    heat_maps = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heat_maps] == ["model", "linear"]
    (mesh,) = heat_maps[0].collections
    assert np.isclose(mesh.norm.vmin * mesh.norm.vmax, 1.0)


def test_plot_latitude_bands_one_panel_per_band(tmp_path):
    errors = np.linspace(0.1, 1.0, 6 * 5).reshape(6, 5)  # (band, lead)
    labels = ["75-90", "60-75", "45-60", "30-45", "15-30", "0-15"]
    path = tmp_path / "bands.png"
    fig = plot_latitude_bands({"model": errors, "persistence": 2 * errors}, labels, path, ["persistence"])
    assert path.stat().st_size > 0
    assert [ax.get_title() for ax in fig.axes] == [f"|latitude| {label} deg" for label in labels]
