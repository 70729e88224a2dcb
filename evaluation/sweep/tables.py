"""The sweep's machine-readable tables: comparison.csv (a row per job and baseline) and comparison_tests.csv (a row
per verdict)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from evaluation.sweep.jobs import METRIC, METRIC_SE, model_curves, value
from evaluation.sweep.verdicts import Verdict
from models import MODEL

TESTS_COLUMNS = ["lead_h", "config", "other", "difference", "ci_low", "ci_high", "p", "p_holm", "test", "n", "over"]
# comparison_physics_tests.csv: the same, with the quantity tested and its part (an invariant, a latitude band) first.
QUANTITY_TESTS_COLUMNS = ["quantity", "part", *TESTS_COLUMNS]


def write_jobs_csv(
    path: Path,
    jobs: list[dict[str, Any]],
    configurations: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    names: list[str],
    leads: list[int],
) -> None:
    """One row per job and per baseline row; cells a row has no value for are left empty."""
    baseline_names = list(dict.fromkeys(row["baseline"] for row in baselines))
    columns = [
        "forecast",
        "label",
        "configuration",
        "job",
        "status",
        "model",
        "parameters",
        "train_time_s",
        "num_trajectories",
        *(f"{block}_{name}_{lead}h" for name in names for lead in leads for block in (METRIC, METRIC_SE)),
        *(f"first_lead_worse_than_{baseline}_{name}" for baseline in baseline_names for name in names),
        "error",
    ]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(_job_row(job, configurations, names, leads) for job in jobs)
        writer.writerows(_baseline_row(row, names, leads) for row in baselines)


def write_tests_csv(path: Path, found: list[Verdict], columns: list[str] = TESTS_COLUMNS) -> None:
    """One row per (lead, configuration, other) and, with QUANTITY_TESTS_COLUMNS, quantity and part; the statistics
    are empty where no test was possible."""
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for verdict in found:
            row = {"quantity": verdict.quantity, "part": verdict.part}
            row |= {"lead_h": verdict.lead, "config": verdict.config, "other": verdict.other}
            row |= {"difference": verdict.difference, "over": verdict.over}
            test = verdict.comparison
            if test is not None:
                row |= {"ci_low": test.ci_low, "ci_high": test.ci_high, "p": test.p, "test": test.test, "n": test.n}
                row["p_holm"] = None if math.isnan(verdict.p_holm) else verdict.p_holm
            writer.writerow(row)


def _job_row(
    job: dict[str, Any], configurations: list[dict[str, Any]], names: list[str], leads: list[int]
) -> dict[str, Any]:
    row = {"forecast": MODEL, "label": job["label"], "job": job["job"], "status": job["status"], "error": job["error"]}
    metrics = job["metrics"]
    if metrics is None:
        return row
    row["configuration"] = next(config["label"] for config in configurations if job in config["jobs"])
    row |= {key: metrics.get(key) for key in ("model", "parameters", "train_time_s", "num_trajectories")}
    for baseline, by_name in metrics.get("first_lead_worse_than", {}).items():
        for name in names:
            row[f"first_lead_worse_than_{baseline}_{name}"] = by_name.get(name)
    return row | _values(model_curves(metrics), names, leads)


def _baseline_row(source: dict[str, Any], names: list[str], leads: list[int]) -> dict[str, Any]:
    row = {"forecast": source["baseline"], "label": source["label"], "status": "completed"}
    return row | {"num_trajectories": source["samples"]} | _values(source, names, leads)


def _values(curves: dict[str, Any], names: list[str], leads: list[int]) -> dict[str, Any]:
    return {
        f"{block}_{name}_{lead}h": value(curves.get(block, {}), name, lead)
        for name in names
        for lead in leads
        for block in (METRIC, METRIC_SE)
    }
