"""The sections of comparison.md: the jobs and baselines, the configurations across seeds, the verdicts, the first
leads worse than each baseline, the channels, the failed jobs and those without the evaluation compared (the
physical diagnostics' sections are `evaluation.sweep.physics`'s)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evaluation.statistics import ALPHA
from evaluation.sweep.jobs import MEAN, METRIC, METRIC_SE, model_curves, value
from evaluation.sweep.verdicts import ACROSS_SEEDS, OVER_TRAJECTORIES, Verdict


def summary(
    sweep_name: str,
    jobs: list[dict[str, Any]],
    configurations: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    leads: list[int],
    sources: Sequence[str] = (),
) -> str:
    """The compact table; ``sources`` are lines saying where the jobs and their results come from (several sweep
    folders, evaluations), put under the title."""
    completed = [job for job in jobs if job["status"] == "completed"]
    failed = sum(job["status"] == "failed" for job in jobs)
    missing = len(jobs) - len(completed) - failed
    trajectories = sorted({job["metrics"].get("num_trajectories") for job in completed} - {None})
    lines = [f"# Sweep comparison: {sweep_name}", "", *(f"{line}  " for line in sources), *([""] if sources else [])]
    lines += [
        f"{len(jobs)} jobs: {len(completed)} completed, {failed} failed"
        + (f", {missing} without the evaluation" if missing else "")
        + f"; {len(configurations)} configurations. Mean over channels of the area-weighted `{METRIC}` error in "
        "normalised units (lower is better) ± one standard error over "
        f"{'/'.join(map(str, trajectories)) or 'the'} test trajectories; baselines are rows below the jobs.",
    ]
    if not completed:
        return "\n".join(lines)
    lines += ["", table_header(["job", "model", "parameters", "train time [s]", *(f"+{lead} h" for lead in leads)])]
    for job in jobs:
        if job["status"] != "completed":
            lines.append(table_line([f"{job['label']} ({job['status']})", "", "", "", *("" for _ in leads)]))
            continue
        metrics = job["metrics"]
        train_time = metrics.get("train_time_s")
        cells = [cell(model_curves(metrics), MEAN, lead) for lead in leads]
        lines.append(
            table_line(
                [
                    job["label"],
                    metrics.get("model"),
                    metrics.get("parameters"),
                    None if train_time is None else round(train_time),
                    *cells,
                ]
            )
        )
    lines += [
        table_line([row["label"], "baseline", "", "", *(cell(row, MEAN, lead) for lead in leads)]) for row in baselines
    ]
    return "\n".join(lines)


def seed_section(configurations: list[dict[str, Any]], leads: list[int]) -> str:
    if all(len(config["jobs"]) == 1 for config in configurations):
        return ""
    lines = [
        "## Across seeds",
        "",
        "Jobs that differ only in `seed`: mean over seeds ± standard error across seeds, and (sd) the seeds' "
        "standard deviation. A configuration of one job shows its standard error over test trajectories.",
        "",
        table_header(["configuration", "model", "seeds", *(f"+{lead} h" for lead in leads)]),
    ]
    for config in configurations:
        cells = []
        for lead in leads:
            spread = value(config["sd"], MEAN, lead)
            cells.append(cell(config, MEAN, lead) + (f" (sd {spread:.2g})" if spread is not None else ""))
        lines.append(table_line([config["label"], config["model"], len(config["jobs"]), *cells]))
    return "\n".join(lines)


def verdict_section(found: list[Verdict]) -> str:
    if not found:
        return "## Who wins\n\nNo completed jobs: nothing to compare."
    lines = [
        "## Who wins",
        "",
        "Per lead, the configuration with the lowest mean error against each other configuration and against its "
        "best baseline: the difference of the mean errors (negative: the first is better), its 95% interval, the "
        "two-sided p and p adjusted by Holm's method over the leads at which the same two are compared; "
        f"significant where the adjusted p is at most {ALPHA}. Tested over `{ACROSS_SEEDS}`: between "
        "configurations Welch's t-test on the per-seed mean errors, against a baseline (which has no seed) a "
        "paired t-test of the per-seed mean differences. Tested over "
        f"`{OVER_TRAJECTORIES}` (a configuration of one seed): a paired t-test over the same test trajectories, "
        "which says nothing about how another training seed would do.",
        "",
        *verdict_table(found),
    ]
    return "\n".join(lines)


def verdict_table(found: list[Verdict], what: str = "") -> list[str]:
    """The verdicts' rows: lead, best, against, difference, interval, p, Holm's p, what it was tested over and the
    verdict (lower is better); ``what`` heads a column of each verdict's `part` (an invariant, a band) where the
    verdicts are of several."""
    columns = ["lead", *([what] if what else []), "best", "against", "difference", "95% interval", "p", "p (Holm)"]
    lines = [table_header([*columns, "over", "verdict"])]
    for verdict in found:
        test = verdict.comparison
        named = [verdict.part] if what else []
        cells = [f"+{verdict.lead} h", *named, verdict.config, verdict.other, f"{verdict.difference:.3g}"]
        if test is None:
            cells += ["", "", "", verdict.over, ""]
        else:
            direction = "better" if verdict.difference < 0 else "worse"
            significant = f"{direction}, significant" if verdict.p_holm <= ALPHA else "not significant"
            if math.isnan(test.p):  # no spread on either side (every rollout stable, say): nothing to test
                significant = "no spread: untested"
            cells += [
                f"[{test.ci_low:.3g}, {test.ci_high:.3g}]",
                f"{test.p:.2g}",
                f"{verdict.p_holm:.2g}",
                f"{verdict.over} (n={test.n})",
                significant,
            ]
        lines.append(table_line(cells))
    return lines


def worse_than_section(completed: list[dict[str, Any]], channels: list[str]) -> str:
    """Per job and baseline, the first lead at which the job is significantly worse than the baseline (its
    test_metrics.json's first_lead_worse_than), and the channels whose own first lead differs from it."""
    if not completed:
        return ""
    baselines = list(
        dict.fromkeys(name for job in completed for name in job["metrics"].get("first_lead_worse_than", {}))
    )
    lines = [
        "## First lead worse than each baseline",
        "",
        "The first lead at which a job is significantly worse than the baseline (paired t-test over its test "
        "trajectories, Holm over the leads, alpha 0.05; never: not within its rollout); in brackets the channels whose "
        "first lead differs. A job whose mean error is above the baseline's without significance is not counted "
        "(test_metrics.json's first_lead_worse_on_mean_than has those leads).",
        "",
        table_header(["job", *baselines]),
    ]
    for job in completed:
        cells = []
        for baseline in baselines:
            by_name = job["metrics"].get("first_lead_worse_than", {}).get(baseline, {})
            differing = [
                f"{name} {_lead(by_name.get(name))}" for name in channels if by_name.get(name) != by_name.get(MEAN)
            ]
            cells.append(_lead(by_name.get(MEAN)) + (f" ({', '.join(differing)})" if differing else ""))
        lines.append(table_line([job["label"], *cells]))
    return "\n".join(lines)


def channel_section(
    completed: list[dict[str, Any]], baselines: list[dict[str, Any]], channels: list[str], leads: list[int]
) -> str:
    if not completed:
        return ""
    lines = ["## Per channel", "", f"`{METRIC}` error ± one standard error over test trajectories."]
    for channel in channels:
        lines += ["", f"### {channel}", "", table_header(["job", *(f"+{lead} h" for lead in leads)])]
        for job in completed:
            source = model_curves(job["metrics"])
            lines.append(table_line([job["label"], *(cell(source, channel, lead) for lead in leads)]))
        lines += [table_line([row["label"], *(cell(row, channel, lead) for lead in leads)]) for row in baselines]
    return "\n".join(lines)


def failed_section(jobs: list[dict[str, Any]]) -> str:
    """Failed jobs by folder name: where to look for train.log and error.txt."""
    failed = [job for job in jobs if job["status"] == "failed"]
    if not failed:
        return ""
    return "\n".join(["## Failed jobs", "", *(f"- `{job['job']}`: {job['error']}" for job in failed)])


def missing_section(jobs: list[dict[str, Any]]) -> str:
    """Jobs that trained but have no finished evaluation of the kind compared, with the command that makes it."""
    missing = [job for job in jobs if job["status"] == "missing"]
    if not missing:
        return ""
    lines = ["## Jobs without the evaluation", ""]
    return "\n".join([*lines, *(f"- `{job['job']}`: {job['error']}" for job in missing)])


def cell(source: dict[str, Any], name: str, lead: int) -> str:
    """`mean ± standard error` (two digits: its own uncertainty allows no more) of a job, configuration or baseline
    row; empty when it did not reach the lead."""
    mean = value(source[METRIC], name, lead)
    if mean is None:
        return ""
    standard_error = value(source.get(METRIC_SE, {}), name, lead)
    return _format(mean) if standard_error is None else f"{_format(mean)} ± {standard_error:.2g}"


def _lead(hour: int | None) -> str:
    return "never" if hour is None else f"+{hour} h"


def table_header(columns: list[str]) -> str:
    return table_line(columns) + "\n|" + "---|" * len(columns)


def table_line(cells: list[Any]) -> str:
    return "| " + " | ".join(entry if isinstance(entry, str) else _format(entry) for entry in cells) + " |"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
