"""What the reports compute from the per-trajectory physical diagnostics of a rollout (`sphere.diagnostics`): drift of
the invariants, stability, the climate a forecast settles into, and its spectrum against the truth's.

Plain numpy arrays in and out; tests between configurations go through `evaluation.statistics`.
"""

import numpy as np

# A rollout is stable while its total energy stays within this factor of the truth's, either way.
ENERGY_FACTOR = 2.0


def relative_drift(invariants: np.ndarray) -> np.ndarray:
    """(..., lead 0..N) -> (..., lead 0..N): (value - value at lead 0) / |value at lead 0|, so 0 at lead 0.

    Lead 0 is the initial state, which forecast and truth share: a forecast's drift against the truth's says what it
    adds to the solver's own (mass: none; energy and potential enstrophy: the hyperdiffusion's loss).
    """
    initial = invariants[..., :1]
    return (invariants - initial) / np.abs(initial)


def exit_leads(forecast_energy: np.ndarray, truth_energy: np.ndarray) -> np.ndarray:
    """Where each rollout leaves the range of a stable one: arrays (trajectory, lead 1..N), the total energy of
    forecast and truth per one-hour lead (leads 1..N hours, as test_errors.npz's lead_hours) -> (trajectory,), the
    first lead, in hours, at which the rollout is not finite or forecast / truth energy lies outside 1 /
    `ENERGY_FACTOR` to `ENERGY_FACTOR`; NaN for a rollout that never leaves it. A rollout that overflows to inf or
    NaN leaves it there.
    """
    if forecast_energy.shape != truth_energy.shape or forecast_energy.ndim != 2:
        raise ValueError(
            f"forecast and truth energy must both be (trajectory, lead), got {forecast_energy.shape} and "
            f"{truth_energy.shape}"
        )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = forecast_energy / truth_energy
        inside = np.isfinite(ratio) & (ratio >= 1 / ENERGY_FACTOR) & (ratio <= ENERGY_FACTOR)  # (trajectory, lead)
    first_outside = np.argmin(inside, axis=1) + 1.0  # the first False of each row, as a 1-based lead
    return np.where(inside.all(axis=1), np.nan, first_outside)


def unstable_as_nan(values: np.ndarray, exits: np.ndarray, first_hour: int) -> np.ndarray:
    """A copy of ``values`` (trajectory, ..., hour), whose last axis counts hours from ``first_hour``, NaN at and
    after each trajectory's exit lead (``exits`` (trajectory,) from `exit_leads`; NaN: never left): what a mean over
    the rollouts still stable at each hour is taken of (`mean_over_kept`), so that one rollout that blew up to 1e40
    does not stand for all. How many left is `stability`'s question."""
    hours = first_hour + np.arange(values.shape[-1])
    left = exits[:, None] <= hours[None, :]  # (trajectory, hour); a NaN exit compares False: never
    left = left.reshape(left.shape[0], *[1] * (values.ndim - 2), left.shape[1])
    return np.where(left, np.nan, values)


def mean_over_kept(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over trajectories (axis 0) of the values that are not NaN (`unstable_as_nan`), the standard error of that
    mean (sample standard deviation / sqrt(n)) and n: NaN mean where n is 0, NaN standard error where n < 2."""
    kept = ~np.isnan(values)
    count = kept.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(kept, values, 0.0).sum(axis=0) / count
        variance = np.where(kept, (values - mean) ** 2, 0.0).sum(axis=0) / (count - 1)
        standard_error = np.where(count >= 2, np.sqrt(variance / count), np.nan)
    return mean, standard_error, count


def stability(forecast_energy: np.ndarray, truth_energy: np.ndarray) -> dict:
    """Which rollouts stay physical (see `exit_leads` for the arrays and the range): {"stable_fraction": the
    fraction of rollouts that never leave the range, "unstable": the count of the others, "median_exit_lead": the
    median over those of the lead at which they leave it (None when all are stable)}."""
    exits = exit_leads(forecast_energy, truth_energy)
    unstable = exits[~np.isnan(exits)]
    return {
        "stable_fraction": float(np.isnan(exits).mean()),
        "unstable": len(unstable),
        "median_exit_lead": float(np.median(unstable)) if len(unstable) else None,
    }


def climate_bias(forecast_moments: np.ndarray, truth_moments: np.ndarray) -> dict:
    """The climate a forecast settles into against the solver's, per channel, over the last half of the leads.

    Moments (trajectory, channel, lead, 2): per lead, the area mean of the field and the area mean of its square
    (float64, or the geopotential's variance drowns in its squared mean). Over the window of the last N // 2 leads
    (at least one), per trajectory and channel, the time mean is the mean of the area means, and the variance is the
    spatio-temporal variance over the window, mean of squares minus squared mean. Returns, per channel (arrays of
    shape (channel,)): "mean_bias" and "variance_bias" (forecast minus truth, averaged over trajectories) with their
    standard errors over trajectories ("mean_bias_se", "variance_bias_se"), the truth's "truth_mean" and
    "truth_variance" to scale them by, and "window_leads", the leads averaged over.

    Meaningful only for rollouts well past the predictability horizon: before it, a forecast still follows its own
    trajectory, and its window statistics differ from the truth's by the weather of that window, not by its climate.
    """
    if forecast_moments.shape != truth_moments.shape or forecast_moments.ndim != 4 or forecast_moments.shape[-1] != 2:
        raise ValueError(
            f"moments must both be (trajectory, channel, lead, 2), got {forecast_moments.shape} and "
            f"{truth_moments.shape}"
        )
    window = max(1, forecast_moments.shape[2] // 2)

    def window_statistics(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(trajectory, channel, lead, 2) -> time mean and spatio-temporal variance, (trajectory, channel) each."""
        mean, mean_square = moments[:, :, -window:].mean(axis=2).transpose(2, 0, 1)
        return mean, mean_square - mean**2

    forecast_mean, forecast_variance = window_statistics(forecast_moments)
    truth_mean, truth_variance = window_statistics(truth_moments)
    mean_bias, mean_bias_se, _ = mean_over_kept(forecast_mean - truth_mean)
    variance_bias, variance_bias_se, _ = mean_over_kept(forecast_variance - truth_variance)
    return {
        "mean_bias": mean_bias,
        "mean_bias_se": mean_bias_se,
        "variance_bias": variance_bias,
        "variance_bias_se": variance_bias_se,
        "truth_mean": truth_mean.mean(axis=0),
        "truth_variance": truth_variance.mean(axis=0),
        "window_leads": window,
    }


def spectral_ratio(forecast_spectrum: np.ndarray, truth_spectrum: np.ndarray) -> np.ndarray:
    """Predicted over true energy per degree: (lead, channel, degree) each -> the ratio, same shape.

    Above 1 a forecast piles energy at that scale, below 1 it smooths it away. Degrees where the truth has no energy
    (none above the data's band, to rounding) give NaN or a meaningless ratio: read those with
    `energy_fraction_summary` instead.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(truth_spectrum > 0, forecast_spectrum / truth_spectrum, np.nan)


def energy_fraction_summary(forecast_fraction: np.ndarray, truth_fraction: np.ndarray) -> dict:
    """Mean and standard error over trajectories of the energy fraction above the band edge
    (`sphere.diagnostics.energy_fraction_above`): arrays (trajectory, ..., lead) -> {"forecast", "forecast_se",
    "truth", "truth_se", "excess", "excess_se"}, each (..., lead).

    "excess" is the forecast's fraction minus the truth's on the same trajectory, so its standard error is the
    paired one: the truth's fraction above the band is rounding, the forecast's what it made up there. NaN values
    (a rollout that left the stable range: `unstable_as_nan`) are left out.
    """
    summary = {}
    for name, values in (
        ("forecast", forecast_fraction),
        ("truth", truth_fraction),
        ("excess", forecast_fraction - truth_fraction),
    ):
        summary[name], summary[f"{name}_se"], _ = mean_over_kept(values)
    return summary
