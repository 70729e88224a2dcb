"""The figures render to non-empty PNGs from the inputs the training and report code pass in."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from evaluation.plots import plot_maps, plot_rollout_error, plot_training_curves

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


def test_plot_rollout_error_draws_shared_persistence_once(tmp_path):
    persistence = [0.1, 0.2, 0.4]
    curves = {
        "sfno": {"model": [0.01, 0.05, 0.3], "persistence": persistence},
        "fno": {"model": [0.02, 0.1, 0.5], "persistence": persistence},
    }
    path = tmp_path / "rollout.png"

    fig = plot_rollout_error(curves, path, title="sweep")

    assert path.stat().st_size > 0
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["sfno", "persistence", "fno"]
    assert ax.get_yscale() == "log"  # 0.01 to 0.5 spans more than a decade


def test_plot_rollout_error_per_channel_panels(tmp_path):
    rel_l2 = {
        "model": {name: [0.1, 0.2] for name in [*CHANNELS, "mean"]},
        "persistence": {name: [0.15, 0.25] for name in [*CHANNELS, "mean"]},
    }

    fig = plot_rollout_error({"run": rel_l2 | {"lead_hours": [1, 2]}}, tmp_path / "rollout.png", title="run")

    assert [ax.get_title() for ax in fig.axes] == [*CHANNELS, "mean"]
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)


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
