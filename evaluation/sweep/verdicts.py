"""The sweep's verdicts: per lead, the configuration with the lowest mean error against each other configuration
and against its best baseline, with the interval of the difference, p and Holm's adjusted p (`evaluation.statistics`).

- Configuration against configuration, several seeds each: Welch's t-test on the per-seed mean errors; it carries
  the seed-to-seed spread, which dominates at long leads.
- Configuration against configuration where one has a single seed: paired over test trajectories (the seed-mean
  error per trajectory), blind to seed variance.
- Against the best baseline (a baseline has no seed, and every seed's model is tested on the baseline's
  trajectories): with several seeds, paired over seeds, i.e. a t-test of the per-seed mean differences, which carries
  the seed variance; with one seed, paired over test trajectories, blind to seed variance.
- Holm's correction over the leads reported, per pair of forecasts compared.

The same machinery tests every `evaluation.sweep.quantities.Quantity`, the physical diagnostics too (`compare`):
there the family of Holm's correction is one question's points (the leads, or the leads and latitude bands).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evaluation.statistics import Comparison, holm, paired, welch
from evaluation.sweep.jobs import METRIC, same_test_set
from evaluation.sweep.quantities import REL_L2, Quantity, configuration_value
from models import MODEL

ACROSS_SEEDS = "seeds"
OVER_TRAJECTORIES = "test trajectories, blind to seed variance"


@dataclass(frozen=True)
class Verdict:
    """`config` against `other` on `quantity` (its `part`) at a lead: difference = config's mean - other's
    (negative: config is better); comparison None where no test is possible (the reason in `over`); p_holm adjusted
    over the pair's family (the leads, or the leads and bands, of one question)."""

    lead: int
    config: str
    other: str
    difference: float
    comparison: Comparison | None = None
    over: str = ""
    p_holm: float = float("nan")
    quantity: str = METRIC
    part: str = ""  # the quantity's part (an invariant, a latitude band), where it has them


def verdicts(configurations: list[dict[str, Any]], leads: list[int]) -> list[Verdict]:
    """Per lead, the best configuration (lowest channel-mean `rel_l2`) against each other one and its best
    baseline, Holm over the leads."""
    return compare(configurations, [(REL_L2, lead) for lead in leads], against_baselines=True)


def compare(
    configurations: list[dict[str, Any]], points: list[tuple[Quantity, int]], against_baselines: bool = False
) -> list[Verdict]:
    """At each (quantity, lead) of ``points``, the configuration with the lowest mean against each other one (and,
    with ``against_baselines``, against its best baseline). The points are one family: Holm's correction per pair
    over the points at which the pair is compared."""
    found = []
    for quantity, lead in points:
        means = {id(config): configuration_value(config, quantity, MODEL, lead) for config in configurations}
        ranked = sorted(
            (config for config in configurations if means[id(config)] is not None), key=lambda config: means[id(config)]
        )
        if not ranked:
            continue
        best = ranked[0]
        found += [_against_configuration(best, other, quantity, lead) for other in ranked[1:]]
        against_baseline = _against_best_baseline(best, quantity, lead) if against_baselines else None
        if against_baseline is not None:
            found.append(against_baseline)
    return _holm_per_pair(found)


def _against_configuration(best: dict[str, Any], other: dict[str, Any], quantity: Quantity, lead: int) -> Verdict:
    difference = configuration_value(best, quantity, MODEL, lead) - configuration_value(other, quantity, MODEL, lead)
    verdict = Verdict(lead, best["label"], other["label"], difference, quantity=quantity.name, part=quantity.part)
    if len(best["jobs"]) > 1 and len(other["jobs"]) > 1:
        seeds = [[quantity.seed_value(job, MODEL, lead) for job in config["jobs"]] for config in (best, other)]
        return replace(verdict, comparison=welch(*seeds), over=ACROSS_SEEDS)
    if not same_test_set([*best["jobs"], *other["jobs"]], lead):
        return replace(verdict, over="no test: not the same test trajectories, or no test_errors.npz")
    per_trajectory = [_seed_mean_per_trajectory(config["jobs"], quantity, lead) for config in (best, other)]
    if any(values is None for values in per_trajectory):
        return replace(verdict, over="no test: no values per test trajectory")
    return replace(verdict, comparison=paired(*_both_kept(*per_trajectory)), over=OVER_TRAJECTORIES)


def _against_best_baseline(config: dict[str, Any], quantity: Quantity, lead: int) -> Verdict | None:
    """The configuration against the baseline with the lowest seed-mean value at the lead on its own jobs' data."""
    jobs = config["jobs"]
    means = {}
    for name in [name for name in jobs[0]["metrics"][METRIC] if name != MODEL]:
        values = [quantity.seed_value(job, name, lead) for job in jobs]
        if all(found is not None for found in values):
            means[name] = float(np.mean(values))
    if not means:
        return None
    baseline = min(means, key=means.get)
    model = [quantity.seed_value(job, MODEL, lead) for job in jobs]
    verdict = Verdict(
        lead,
        config["label"],
        baseline,
        float(np.mean(model)) - means[baseline],
        quantity=quantity.name,
        part=quantity.part,
    )
    if len(jobs) > 1:
        comparison = paired(model, [quantity.seed_value(job, baseline, lead) for job in jobs])
        return replace(verdict, comparison=comparison, over=ACROSS_SEEDS)
    values = [quantity.per_trajectory(jobs[0], forecast, lead) for forecast in (MODEL, baseline)]
    if any(found is None for found in values):
        return replace(verdict, over="no test: no test_errors.npz")
    return replace(verdict, comparison=paired(*_both_kept(*values)), over=OVER_TRAJECTORIES)


def _both_kept(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of the same test trajectories where neither value is NaN (a physical quantity of a rollout that left
    the stable range: `evaluation.sweep.quantities.physics`); the test's n counts them."""
    kept = ~(np.isnan(a) | np.isnan(b))
    return a[kept], b[kept]


def _seed_mean_per_trajectory(jobs: list[dict[str, Any]], quantity: Quantity, lead: int) -> np.ndarray | None:
    """The model's value per test trajectory, averaged over the configuration's seeds (one test set: checked)."""
    values = [quantity.per_trajectory(job, MODEL, lead) for job in jobs]
    return None if any(found is None for found in values) else np.mean(values, axis=0)


def _holm_per_pair(found: list[Verdict]) -> list[Verdict]:
    """Holm's correction per pair of forecasts over the points at which the pair is compared (either way round: the
    best configuration can change from lead to lead)."""
    families: dict[frozenset, list[int]] = {}
    for index, verdict in enumerate(found):
        if verdict.comparison is not None:
            families.setdefault(frozenset((verdict.config, verdict.other)), []).append(index)
    adjusted = list(found)
    for indices in families.values():
        for index, p_holm in zip(indices, holm([found[index].comparison.p for index in indices]), strict=True):
            adjusted[index] = replace(found[index], p_holm=p_holm)
    return adjusted
