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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evaluation.statistics import Comparison, holm, paired, welch
from evaluation.sweep.jobs import MEAN, METRIC, job_value, same_test_set, trajectory_errors, value
from models import MODEL

ACROSS_SEEDS = "seeds"
OVER_TRAJECTORIES = "test trajectories, blind to seed variance"


@dataclass(frozen=True)
class Verdict:
    """`config` against `other` at a lead: difference = config's mean error - other's (negative: config is better);
    comparison None where no test is possible (the reason in `over`); p_holm adjusted over the pair's leads."""

    lead: int
    config: str
    other: str
    difference: float
    comparison: Comparison | None = None
    over: str = ""
    p_holm: float = float("nan")


def verdicts(configurations: list[dict[str, Any]], leads: list[int]) -> list[Verdict]:
    """Per lead, the best configuration (lowest channel-mean error) against each other one and its best baseline."""
    found = []
    for lead in leads:
        ranked = sorted(
            (config for config in configurations if value(config[METRIC], MEAN, lead) is not None),
            key=lambda config: value(config[METRIC], MEAN, lead),
        )
        if not ranked:
            continue
        best = ranked[0]
        found += [_against_configuration(best, other, lead) for other in ranked[1:]]
        against_baseline = _against_best_baseline(best, lead)
        if against_baseline is not None:
            found.append(against_baseline)
    return _holm_over_leads(found)


def _against_configuration(best: dict[str, Any], other: dict[str, Any], lead: int) -> Verdict:
    difference = value(best[METRIC], MEAN, lead) - value(other[METRIC], MEAN, lead)
    verdict = Verdict(lead, best["label"], other["label"], difference)
    if len(best["jobs"]) > 1 and len(other["jobs"]) > 1:
        seeds = [[job_value(job, MODEL, lead) for job in config["jobs"]] for config in (best, other)]
        return replace(verdict, comparison=welch(*seeds), over=ACROSS_SEEDS)
    if not same_test_set([*best["jobs"], *other["jobs"]], lead):
        return replace(verdict, over="no test: not the same test trajectories, or no test_errors.npz")
    per_trajectory = [_seed_mean_per_trajectory(config["jobs"], lead) for config in (best, other)]
    return replace(verdict, comparison=paired(*per_trajectory), over=OVER_TRAJECTORIES)


def _against_best_baseline(config: dict[str, Any], lead: int) -> Verdict | None:
    """The configuration against the baseline with the lowest seed-mean error at the lead on its own jobs' data."""
    jobs = config["jobs"]
    means = {}
    for name in [name for name in jobs[0]["metrics"][METRIC] if name != MODEL]:
        values = [job_value(job, name, lead) for job in jobs]
        if all(found is not None for found in values):
            means[name] = float(np.mean(values))
    if not means:
        return None
    baseline = min(means, key=means.get)
    model = [job_value(job, MODEL, lead) for job in jobs]
    verdict = Verdict(lead, config["label"], baseline, float(np.mean(model)) - means[baseline])
    if len(jobs) > 1:
        comparison = paired(model, [job_value(job, baseline, lead) for job in jobs])
        return replace(verdict, comparison=comparison, over=ACROSS_SEEDS)
    errors = [trajectory_errors(jobs[0], forecast, lead) for forecast in (MODEL, baseline)]
    if any(found is None for found in errors):
        return replace(verdict, over="no test: no test_errors.npz")
    return replace(verdict, comparison=paired(*errors), over=OVER_TRAJECTORIES)


def _seed_mean_per_trajectory(jobs: list[dict[str, Any]], lead: int) -> np.ndarray:
    """The model's error per test trajectory, averaged over the configuration's seeds (one test set: checked)."""
    return np.mean([trajectory_errors(job, MODEL, lead) for job in jobs], axis=0)


def _holm_over_leads(found: list[Verdict]) -> list[Verdict]:
    """Holm's correction per pair of forecasts over the leads at which the pair is compared (either way round: the
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
