"""What the sweep report compares between configurations: `rel_l2` and the physical diagnostics of each job's
test_physics.npz, each as a `Quantity`, a value per test trajectory of a job's forecast at a lead.

The verdicts (`evaluation.sweep.verdicts`) test every quantity alike: per-seed means across seeds, or per-trajectory
values paired over one test set. A job's physics are read once and kept as the per-trajectory arrays the report
needs (channel means), not the whole file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.physics import unstable_as_nan
from evaluation.run_report import band_labels, forecast_exits, stable_drifts
from evaluation.sweep.jobs import job_value, trajectory_errors
from evaluation.test_physics import load_test_physics
from models import TRUTH
from runs.folder import PHYSICS_FILE
from sphere import INVARIANTS


@dataclass(frozen=True)
class Quantity:
    """A value per test trajectory of one forecast of a job at a lead hour, (trajectory,) or None where the job
    lacks it; `per_seed` its mean over the trajectories, read where the job's test_metrics.json has it, else the
    mean of `per_trajectory`. Compared quantities are errors: lower is better. `part`: which invariant or latitude
    band, for quantities that have several."""

    name: str
    per_trajectory: Callable[[dict[str, Any], str, int], np.ndarray | None]
    per_seed: Callable[[dict[str, Any], str, int], float | None] | None = None
    part: str = ""

    def seed_value(self, job: dict[str, Any], forecast: str, lead: int) -> float | None:
        """The job's mean over its test trajectories (those not NaN: see `physics`); None where missing, with no
        trajectory, or not finite."""
        if self.per_seed is not None:
            return self.per_seed(job, forecast, lead)
        values = self.per_trajectory(job, forecast, lead)
        values = None if values is None else values[~np.isnan(values)]
        found = None if values is None or len(values) == 0 else float(values.mean())
        return found if found is not None and math.isfinite(found) else None


REL_L2 = Quantity("rel_l2", trajectory_errors, job_value)


def physics(job: dict[str, Any]) -> dict[str, Any] | None:
    """A job's physical diagnostics per test trajectory, channel means, from the test_physics.npz of its results
    folder (read once per report), None without one:

    "sources", "forecasts", "bands" (labels such as "75-90"), "leads" (the number of lead hours), "drift" (source,
    trajectory, invariant, hour 0..N: `relative_drift`), "exit_lead" (forecast, trajectory: the first lead outside
    the energy range, NaN if none: `exit_leads`), "fraction_above" (source, trajectory, lead), "bands_rel_l2"
    (forecast, trajectory, band, lead), "authors" (forecast, trajectory, lead).

    A forecast's drift and fraction above the band edge are NaN from the lead at which its rollout left the energy
    range on: measured over the rollouts still stable, so that one rollout that blew up to 1e40 does not stand for
    the drift of all; how many left is the stability's question (`UNSTABLE`). The errors keep every rollout.
    """
    if "physics" not in job:
        job["physics"] = _read_physics(job) if (job["results"] / PHYSICS_FILE).is_file() else None
    return job["physics"]


def _read_physics(job: dict[str, Any]) -> dict[str, Any]:
    read = load_test_physics(job["results"])
    sources = read.labels["source"].tolist()
    forecasts = read.labels["forecast"].tolist()
    exits = forecast_exits(read)
    drifts = stable_drifts(read, exits)
    fraction_above = read.measures["energy_fraction_above"].mean(axis=2)  # (source, trajectory, lead)
    for forecast in forecasts:
        index = sources.index(forecast)
        fraction_above[index] = unstable_as_nan(fraction_above[index], exits[forecast], first_hour=1)
    return {
        "sources": sources,
        "forecasts": forecasts,
        "bands": band_labels(read.labels["band"]),
        "leads": len(read.labels["lead"]),
        "drift": np.stack([drifts[source] for source in sources]),
        "exit_lead": np.stack([exits[forecast] for forecast in forecasts]),
        "fraction_above": fraction_above,
        "bands_rel_l2": read.measures["latitude_band_rel_l2"].mean(axis=2),
        "authors": read.measures["authors_pooled_rel_l2"],
    }


def _measure(
    job: dict[str, Any], axis: str, name: str, lead: int, take: Callable[[dict[str, Any], int], np.ndarray]
) -> np.ndarray | None:
    """``take(physics, index of name on axis)`` for a job whose physics has ``name`` and reaches ``lead``."""
    found = physics(job)
    if found is None or name not in found[axis] or not 1 <= lead <= found["leads"]:
        return None
    return take(found, found[axis].index(name))


def invariant_drift(invariant: str) -> Quantity:
    """The relative drift of an invariant from the initial state (`relative_drift`), the truth's too: not an error."""
    index = INVARIANTS.index(invariant)
    return Quantity(
        "relative_drift",
        lambda job, source, lead: _measure(job, "sources", source, lead, lambda p, s: p["drift"][s, :, index, lead]),
        part=invariant,
    )


def drift_error(invariant: str) -> Quantity:
    """How far a forecast's drift of an invariant lies from the truth's on the same trajectory, |forecast's -
    truth's|: the solver loses energy and enstrophy to its hyperdiffusion, so zero drift is not the aim."""
    drift = invariant_drift(invariant)

    def per_trajectory(job: dict[str, Any], forecast: str, lead: int) -> np.ndarray | None:
        forecast_drift, truth_drift = (drift.per_trajectory(job, source, lead) for source in (forecast, TRUTH))
        return None if forecast_drift is None or truth_drift is None else np.abs(forecast_drift - truth_drift)

    return Quantity("drift_error", per_trajectory, part=invariant)


# 1 where the rollout has left the energy range of a stable one (evaluation.physics.stability) by the lead, else 0:
# its mean is 1 - stable_fraction.
UNSTABLE = Quantity(
    "unstable_fraction",
    lambda job, forecast, lead: _measure(
        job, "forecasts", forecast, lead, lambda p, f: (p["exit_lead"][f] <= lead).astype(float)
    ),
)
# The energy fraction above the data's band edge (channel mean), the truth's too.
FRACTION_ABOVE = Quantity(
    "energy_fraction_above",
    lambda job, source, lead: _measure(job, "sources", source, lead, lambda p, s: p["fraction_above"][s, :, lead - 1]),
)


def _excess(job: dict[str, Any], forecast: str, lead: int) -> np.ndarray | None:
    forecast_fraction, truth_fraction = (
        FRACTION_ABOVE.per_trajectory(job, source, lead) for source in (forecast, TRUTH)
    )
    return None if forecast_fraction is None or truth_fraction is None else forecast_fraction - truth_fraction


# The forecast's energy fraction above the band edge minus the truth's on the same trajectory: energy made up at
# scales the data never has.
EXCESS_ABOVE = Quantity("energy_fraction_above_excess", _excess)
AUTHORS = Quantity(
    "authors_pooled_rel_l2",
    lambda job, forecast, lead: _measure(job, "forecasts", forecast, lead, lambda p, f: p["authors"][f, :, lead - 1]),
)


def latitude_band(band: str) -> Quantity:
    """The channel-mean relative L2 error in one latitude band (a label such as "75-90")."""

    def per_trajectory(job: dict[str, Any], forecast: str, lead: int) -> np.ndarray | None:
        found = physics(job)
        if found is None or band not in found["bands"]:
            return None
        index = found["bands"].index(band)
        return _measure(job, "forecasts", forecast, lead, lambda p, f: p["bands_rel_l2"][f, :, index, lead - 1])

    return Quantity("latitude_band_rel_l2", per_trajectory, part=band)


def configuration_value(config: dict[str, Any], quantity: Quantity, source: str, lead: int) -> float | None:
    """A configuration's value: the mean over its seeds of each job's mean over test trajectories; None where a job
    lacks it."""
    values = [quantity.seed_value(job, source, lead) for job in config["jobs"]]
    return None if any(found is None for found in values) else float(np.mean(values))


def configuration_summary(
    config: dict[str, Any], quantity: Quantity, source: str, lead: int
) -> tuple[float, float | None] | None:
    """(mean, standard error) of a configuration as the rel_l2 tables give it: with several seeds the mean over
    seeds and the standard error across them; with one, over its test trajectories. None where a job lacks it."""
    mean = configuration_value(config, quantity, source, lead)
    if mean is None:
        return None
    jobs = config["jobs"]
    if len(jobs) > 1:
        values = np.array([quantity.seed_value(job, source, lead) for job in jobs])
    else:
        values = quantity.per_trajectory(jobs[0], source, lead)
        if values is None:
            return mean, None
        values = values[~np.isnan(values)]
    standard_error = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return mean, standard_error if standard_error is not None and math.isfinite(standard_error) else None
