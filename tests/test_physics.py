"""The report's physical summaries on synthetic arrays whose answers are known."""

import numpy as np
import pytest

from evaluation.physics import (
    climate_bias,
    energy_fraction_summary,
    exit_leads,
    mean_over_kept,
    relative_drift,
    spectral_ratio,
    stability,
    unstable_as_nan,
)


def test_relative_drift_starts_at_zero_and_scales_by_the_first_value():
    invariants = np.array([[2.0, 2.2, 1.0], [-4.0, -3.0, -4.0]])  # (trajectory, lead 0..2)
    np.testing.assert_allclose(relative_drift(invariants), [[0.0, 0.1, -0.5], [0.0, 0.25, 0.0]])


def test_stability_counts_rollouts_that_leave_a_factor_of_two_or_overflow():
    truth = np.full((5, 6), 10.0)  # (trajectory, lead 1..6)
    forecast = truth.copy()
    forecast[1] = [10, 12, 19.9, 5.1, 20.0, 5.0]  # inside at every lead: the bounds count as inside
    forecast[2, 3:] = 20.5  # leaves at lead 4
    forecast[3, 1] = np.inf  # overflows at lead 2, then NaN
    forecast[3, 2:] = np.nan
    forecast[4, 5] = 4.9  # leaves at the last lead, 6
    result = stability(forecast, truth)
    assert result == {"stable_fraction": 0.4, "unstable": 3, "median_exit_lead": 4.0}


def test_stability_of_all_stable_rollouts_has_no_exit_lead():
    energy = np.ones((3, 4))
    assert stability(energy, energy) == {"stable_fraction": 1.0, "unstable": 0, "median_exit_lead": None}
    with pytest.raises(ValueError, match="trajectory, lead"):
        stability(energy, energy[:, :2])


def test_a_rollout_is_left_out_from_its_exit_lead_on_and_means_are_over_the_others():
    truth = np.full((3, 4), 10.0)  # (trajectory, lead 1..4)
    forecast = truth.copy()
    forecast[1, 2:] = 1e30  # leaves at lead 3
    exits = exit_leads(forecast, truth)
    values = np.arange(15.0).reshape(3, 5)  # (trajectory, hour 0..4)
    kept = unstable_as_nan(values, exits, first_hour=0)
    np.testing.assert_array_equal(np.isnan(kept), [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    by_lead = unstable_as_nan(values[:, 1:, None].repeat(2, axis=2).transpose(0, 2, 1), exits, first_hour=1)
    assert np.isnan(by_lead[1, :, 2:]).all() and not np.isnan(by_lead[1, :, :2]).any(), "(trajectory, ..., lead)"
    mean, standard_error, count = mean_over_kept(kept)
    np.testing.assert_array_equal(count, [3, 3, 3, 2, 2])
    np.testing.assert_allclose(mean, [5, 6, 7, 8, 9])
    np.testing.assert_allclose(standard_error[3], np.std([3, 13], ddof=1) / np.sqrt(2))
    _, standard_error, count = mean_over_kept(np.array([[1.0, np.nan], [np.nan, np.nan]]))
    assert count.tolist() == [1, 0] and np.isnan(standard_error).all(), "no spread from one value, none from none"


def moments_of(fields: np.ndarray) -> np.ndarray:
    """Fields (trajectory, channel, lead, points) of equal-area points -> (trajectory, channel, lead, 2) moments."""
    return np.stack([fields.mean(axis=-1), (fields**2).mean(axis=-1)], axis=-1)


def test_climate_bias_of_a_shifted_and_scaled_climate():
    """Forecast = 1 + 2 x truth over the last half of the leads: mean bias 1 + mean(truth), variance bias 3 x
    var(truth), with the truth's statistics taken over the window's leads and points together."""
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((4, 2, 10, 50))  # (trajectory, channel, lead, points)
    forecast = 1 + 2 * truth
    forecast[:, :, :5] = 1e6  # the first half of the leads is not in the window
    result = climate_bias(moments_of(forecast), moments_of(truth))
    window = truth[:, :, 5:].reshape(4, 2, -1)  # (trajectory, channel, leads x points)
    mean_bias = 1 + window.mean(axis=-1)
    variance_bias = 3 * window.var(axis=-1)
    assert result["window_leads"] == 5
    np.testing.assert_allclose(result["mean_bias"], mean_bias.mean(axis=0))
    np.testing.assert_allclose(result["mean_bias_se"], mean_bias.std(axis=0, ddof=1) / 2)
    np.testing.assert_allclose(result["variance_bias"], variance_bias.mean(axis=0))
    np.testing.assert_allclose(result["variance_bias_se"], variance_bias.std(axis=0, ddof=1) / 2)
    np.testing.assert_allclose(result["truth_variance"], window.var(axis=-1).mean(axis=0))


def test_climate_bias_of_the_truth_itself_is_zero():
    moments = moments_of(np.random.default_rng(1).standard_normal((3, 3, 7, 20)))
    result = climate_bias(moments, moments)
    assert result["window_leads"] == 3
    for key in ("mean_bias", "mean_bias_se", "variance_bias", "variance_bias_se"):
        np.testing.assert_array_equal(result[key], np.zeros(3))


def test_spectral_ratio_is_nan_where_the_truth_has_no_energy():
    truth = np.array([[[4.0, 2.0, 0.0]]])  # (lead, channel, degree)
    forecast = np.array([[[2.0, 4.0, 1.0]]])
    np.testing.assert_array_equal(spectral_ratio(forecast, truth), [[[0.5, 2.0, np.nan]]])


def test_energy_fraction_summary_pairs_forecast_and_truth():
    truth = np.array([[0.0, 0.1], [0.2, 0.1], [0.1, 0.4]])  # (trajectory, lead)
    forecast = truth + np.array([[0.1, 0.3]])  # the same excess on every trajectory
    summary = energy_fraction_summary(forecast, truth)
    np.testing.assert_allclose(summary["excess"], [0.1, 0.3])
    np.testing.assert_allclose(summary["excess_se"], [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(summary["truth"], [0.1, 0.2])
    np.testing.assert_allclose(summary["truth_se"], [0.1 / np.sqrt(3), np.sqrt(0.03) / np.sqrt(3)])
    np.testing.assert_allclose(summary["forecast"], [0.2, 0.5])
