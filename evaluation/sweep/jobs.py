"""The jobs of a sweep as the report reads them: short labels, configurations (jobs that differ only in `seed`),
baseline rows, and each job's errors per test trajectory.

Configurations and baseline rows are dicts whose METRIC and METRIC_SE blocks map a name (a channel or "mean") to
its values per lead, as test_metrics.json's blocks do for one forecast, so that tables and figures read them alike.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from evaluation.test_errors import load_test_errors
from models import MODEL
from runs.folder import ERRORS_FILE, job_number

METRIC = "rel_l2"  # the error every table, figure and test of the sweep report compares
METRIC_SE = f"{METRIC}_se"  # test_metrics.json's block of its standard errors over test trajectories
MEAN = "mean"  # test_metrics.json's name of the channel mean
SEED_KEY = "seed"  # jobs that differ only in this override are one configuration


def label_jobs(jobs: list[dict[str, Any]]) -> None:
    """Give each job a short "label": its number and the overrides in which the completed jobs differ (the last
    part of each key), e.g. `#3 model=fno seed=1`, instead of the folder name that repeats every override. Jobs of a
    report over several sweep folders carry their folder's number in it ("sweep": 1, 2...): `s2#3`."""
    differing = differing_keys([job for job in jobs if job["status"] == "completed"])
    for job in jobs:
        number = job_number(job["path"])[0]
        name = f"#{number}" if math.isfinite(number) else job["job"]
        if "sweep" in job:
            name = f"s{job['sweep']}{name}"
        if job["status"] != "completed":
            job["label"] = name
            continue
        job["label"] = " ".join([name, *_shown(overrides(job), differing)])


def group_configurations(completed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completed jobs grouped into configurations: jobs whose overrides differ only in `seed`.

    Each configuration: {"label", "jobs", "model", "samples", METRIC, METRIC_SE, "sd"}, the last three {name: per
    lead} over the leads every job reached. With several seeds, METRIC is the mean over seeds, "sd" their standard
    deviation, METRIC_SE the standard error across seeds and "samples" the number of seeds; with one, the job's
    own values, its standard error over test trajectories and their number (no spread across seeds: {}).
    """
    differing = [key for key in differing_keys(completed) if key != SEED_KEY]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for job in completed:
        key = (
            job["metrics"].get("model"),
            job["metrics"].get("data"),
            tuple(sorted((name, value) for name, value in overrides(job).items() if name != SEED_KEY)),
        )
        groups.setdefault(key, []).append(job)
    configurations = []
    for members in groups.values():
        label = " ".join(_shown(overrides(members[0]), differing)) or str(members[0]["metrics"].get("model"))
        configurations.append(
            {"label": label, "jobs": members, "model": members[0]["metrics"].get("model")} | _across_seeds(members)
        )
    return configurations


def _across_seeds(members: list[dict[str, Any]]) -> dict[str, Any]:
    if len(members) == 1:
        return model_curves(members[0]["metrics"]) | {
            "sd": {},
            "samples": members[0]["metrics"].get("num_trajectories"),
        }
    model = [job["metrics"][METRIC][MODEL] for job in members]
    stats: dict[str, Any] = {METRIC: {}, METRIC_SE: {}, "sd": {}, "samples": len(members)}
    for name in [name for name in model[0] if all(name in curves for curves in model)]:
        steps = min(len(curves[name]) for curves in model)
        values = np.array([curves[name][:steps] for curves in model], dtype=float)  # (seeds, steps)
        spread = values.std(axis=0, ddof=1)
        stats[METRIC][name] = values.mean(axis=0).tolist()
        stats["sd"][name] = spread.tolist()
        stats[METRIC_SE][name] = (spread / math.sqrt(len(members))).tolist()
    return stats


def baseline_rows(completed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per baseline and distinct set of values: jobs tested on the same data share their baselines."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for job in completed:
        metrics = job["metrics"]
        for baseline, curves in metrics[METRIC].items():
            if baseline == MODEL:
                continue
            # Rounded: the same data gives the same baselines up to the last bits of another device's arithmetic.
            rounded = {name: [float(f"{value:.6g}") for value in values] for name, values in curves.items()}
            row = rows.setdefault(
                (baseline, json.dumps(rounded, sort_keys=True)),
                {
                    "baseline": baseline,
                    METRIC: curves,
                    METRIC_SE: metrics.get(METRIC_SE, {}).get(baseline, {}),
                    "samples": metrics.get("num_trajectories"),
                    "jobs": [],
                },
            )
            row["jobs"].append(job)
    for (baseline, _), row in rows.items():
        shared = sum(other == baseline for other, _ in rows) > 1
        row["label"] = (
            f"{baseline} ({', '.join(job['label'].split()[0] for job in row['jobs'])})" if shared else baseline
        )
    return list(rows.values())


def model_curves(metrics: dict[str, Any]) -> dict[str, dict[str, list]]:
    """A job's model errors and their standard errors over test trajectories, as the table cells read them."""
    return {METRIC: metrics[METRIC][MODEL], METRIC_SE: metrics.get(METRIC_SE, {}).get(MODEL, {})}


def value(curves: dict[str, list], name: str, lead: int) -> float | None:
    """The value of a per-lead curve at a lead hour (leads start at 1), None when missing or undefined."""
    values = curves.get(name, [])
    found = values[lead - 1] if lead <= len(values) else None
    return None if found is None or not math.isfinite(found) else found


def job_value(job: dict[str, Any], forecast: str, lead: int) -> float | None:
    """A job's channel-mean error of one forecast at a lead, from its test_metrics.json."""
    return value(job["metrics"][METRIC].get(forecast, {}), MEAN, lead)


def trajectory_errors(job: dict[str, Any], forecast: str, lead: int) -> np.ndarray | None:
    """A job's channel-mean error of one forecast at a lead for each test trajectory, in test-split order, from its
    test_errors.npz (in its results folder); None where the job has no such file or the file lacks the forecast or
    the lead."""
    if "errors" not in job:  # read once per report
        job["errors"] = load_test_errors(job["results"]) if (job["results"] / ERRORS_FILE).is_file() else None
    errors = job["errors"]
    if errors is None or forecast not in errors.forecasts or lead not in errors.lead_hours:
        return None
    values = errors.of(METRIC, forecast)[:, :, errors.lead_hours.index(lead)]  # (trajectory, channel)
    return values.mean(axis=-1)


def same_test_set(jobs: list[dict[str, Any]], lead: int) -> bool:
    """Whether the jobs were tested on the same trajectories, in the same order: their baselines (which depend on
    the test data only) agree per trajectory. Pairing over trajectories is sound only then."""
    first = jobs[0]
    baselines = [forecast for forecast in first["metrics"][METRIC] if forecast != MODEL]
    for forecast in baselines:
        reference = trajectory_errors(first, forecast, lead)
        for job in jobs[1:]:
            other = trajectory_errors(job, forecast, lead)
            if reference is None or other is None or reference.shape != other.shape:
                return False
            if not np.allclose(reference, other, rtol=1e-5, atol=0):
                return False
    return all(trajectory_errors(job, MODEL, lead) is not None for job in jobs)


def overrides(job: dict[str, Any]) -> dict[str, str]:
    """A job's command-line overrides as {key: value} (the launch's, as test_metrics.json records them)."""
    pairs = (override.split("=", 1) for override in job["metrics"].get("overrides", []) if "=" in override)
    return {key: value for key, value in pairs}


def differing_keys(completed: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value is not the same in every completed job, in the order the jobs name them."""
    every = [overrides(job) for job in completed]
    keys = list(dict.fromkeys(key for pairs in every for key in pairs))
    return [key for key in keys if len({pairs.get(key) for pairs in every}) > 1]


def _shown(pairs: dict[str, str], keys: list[str]) -> list[str]:
    return [f"{key.rsplit('.', 1)[-1]}={pairs[key]}" for key in keys if key in pairs]
