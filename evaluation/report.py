"""Comparison of the jobs of a Hydra multirun sweep: a Markdown and CSV table, a rollout plot, and a Hydra callback
that writes them when the sweep ends.

Enable the callback with `hydra.callbacks.comparison_report._target_=evaluation.report.ComparisonReport`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from models import MODEL
from runs.folder import ERROR_FILE, METRICS_FILE, SAVED_CONFIG

log = logging.getLogger(__name__)

REPORT_LEAD_HOURS = (1, 5, 10, 20, 50, 100)  # rollout leads tabulated; those no job reached are left out
SEED_KEY = "seed"  # jobs that differ only in this override are one configuration
CONFIDENCE = 0.95  # two-sided intervals of mean +- t standard errors (Student's t) decide "significant"


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job of the sweep with its test metrics, or why it has none, so that failed jobs show in the report.

    Job folders are the subfolders holding `.hydra/`, ordered by the job number that starts their name. Each job:
    {"job": folder name, "path": Path, "status": "completed" | "failed", "metrics": dict | None, "error": str | None}.
    """
    job_dirs = [path for path in Path(sweep_dir).iterdir() if (path / SAVED_CONFIG).parent.is_dir()]
    return [_load_job(job_dir) for job_dir in sorted(job_dirs, key=_job_number)]


def write_comparison(sweep_dir: str | Path) -> Path:
    """Write comparison.md, comparison.csv and the figures rollout_comparison.png and power_spectrum_comparison.png
    into the sweep folder; return the Markdown path.

    Jobs that differ only in `seed` form one configuration, summarised by the mean and spread across its seeds.
    Every baseline of the jobs' test_metrics.json is a row beside the jobs, once per distinct set of values (jobs
    on the same data share them). Leads are hours (the data steps one hour).
    """
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    completed = [job for job in jobs if job["status"] == "completed"]
    label_jobs(jobs)
    configurations = group_configurations(completed)
    baselines = _baseline_rows(completed)
    channels = list(dict.fromkeys(channel for job in completed for channel in job["metrics"]["channels"]))
    names = [*channels, "mean"]
    leads = [lead for lead in REPORT_LEAD_HOURS if any(lead in job["metrics"]["lead_hours"] for job in completed)]
    baseline_names = list(dict.fromkeys(row["baseline"] for row in baselines))

    columns = _csv_columns(names, leads, baseline_names)
    with (sweep_dir / "comparison.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(_csv_row(job, configurations, names, leads) for job in jobs)
        writer.writerows(_csv_row(row, configurations, names, leads) for row in baselines)

    figures = {}
    if completed:
        # Imported here so that loading the callback at sweep start does not pull in matplotlib.
        from evaluation.plots import plot_power_spectrum, plot_rollout_error

        figures["rollout error against lead time"] = sweep_dir / "rollout_comparison.png"
        curves = {config["label"]: config for config in configurations} | {row["label"]: row for row in baselines}
        plot_rollout_error(
            curves,
            figures["rollout error against lead time"],
            title=f"relative L2 error (+- 1 SE): {sweep_dir.name}",
            baselines=[row["label"] for row in baselines],
        )
        spectra = {
            job["label"]: job["metrics"]["power_spectrum"] for job in completed if "power_spectrum" in job["metrics"]
        }
        if spectra:
            figures["power spectrum per job"] = sweep_dir / "power_spectrum_comparison.png"
            plot_power_spectrum(spectra, channels, figures["power spectrum per job"])

    markdown_path = sweep_dir / "comparison.md"
    sections = [
        _summary(sweep_dir.name, jobs, configurations, baselines, leads),
        _seed_section(configurations, leads),
        _winner_section(configurations, baselines, leads),
        _worse_than_section(completed, channels),
        _channel_section(jobs, baselines, channels, leads),
        _failed_section(jobs),
        "\n".join(f"![{title}]({path.name})" for title, path in figures.items()),
    ]
    markdown_path.write_text("\n\n".join(section for section in sections if section) + "\n")
    return markdown_path


def label_jobs(jobs: list[dict[str, Any]]) -> None:
    """Give each job a short "label": its number and the overrides in which the completed jobs differ (the last
    part of each key), e.g. `#3 model=fno seed=1`, instead of the folder name that repeats every override."""
    differing = _differing_keys([job for job in jobs if job["status"] == "completed"])
    for job in jobs:
        number = _job_number(job["path"])[0]
        name = f"#{number}" if math.isfinite(number) else job["job"]
        if job["status"] != "completed":
            job["label"] = name
            continue
        overrides = _overrides(job)
        shown = [f"{key.rsplit('.', 1)[-1]}={overrides[key]}" for key in differing if key in overrides]
        job["label"] = " ".join([name, *shown])


def group_configurations(completed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completed jobs grouped into configurations: jobs whose overrides differ only in `seed`.

    Each configuration: {"label", "jobs", "model", "samples", "rel_l2", "rel_l2_se", "rel_l2_sd"}, the last three
    {name: per lead} over the leads every job reached. With several seeds, rel_l2 is the mean over seeds,
    rel_l2_sd their standard deviation, rel_l2_se the standard error across seeds and "samples" the number of
    seeds; with one, the job's own values, its standard error over test trajectories and their number (no spread
    across seeds: {}).
    """
    differing = [key for key in _differing_keys(completed) if key != SEED_KEY]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for job in completed:
        overrides = _overrides(job)
        key = (
            job["metrics"].get("model"),
            job["metrics"].get("data"),
            tuple(sorted((name, value) for name, value in overrides.items() if name != SEED_KEY)),
        )
        groups.setdefault(key, []).append(job)
    configurations = []
    for members in groups.values():
        overrides = _overrides(members[0])
        shown = [f"{key.rsplit('.', 1)[-1]}={overrides[key]}" for key in differing if key in overrides]
        label = " ".join(shown) or str(members[0]["metrics"].get("model") or "all jobs")
        configurations.append(
            {"label": label, "jobs": members, "model": members[0]["metrics"].get("model")} | _across_seeds(members)
        )
    return configurations


def _across_seeds(members: list[dict[str, Any]]) -> dict[str, Any]:
    model_curves = [job["metrics"]["rel_l2"][MODEL] for job in members]
    if len(members) == 1:
        samples = members[0]["metrics"].get("num_trajectories")
        return _model_curves(members[0]["metrics"]) | {"rel_l2_sd": {}, "samples": samples}
    stats: dict[str, Any] = {"rel_l2": {}, "rel_l2_se": {}, "rel_l2_sd": {}, "samples": len(members)}
    for name in [name for name in model_curves[0] if all(name in curves for curves in model_curves)]:
        steps = min(len(curves[name]) for curves in model_curves)
        values = np.array([curves[name][:steps] for curves in model_curves], dtype=float)  # (seeds, steps)
        spread = values.std(axis=0, ddof=1)
        stats["rel_l2"][name] = values.mean(axis=0).tolist()
        stats["rel_l2_sd"][name] = spread.tolist()
        stats["rel_l2_se"][name] = (spread / math.sqrt(len(members))).tolist()
    return stats


class ComparisonReport(Callback):
    """Writes the sweep comparison once every job of a multirun has returned."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            markdown_path = write_comparison(str(config.hydra.sweep.dir))
        except Exception:
            # A broken report must not turn a finished sweep into a failed command.
            log.exception("Could not write the sweep comparison")
            return
        log.info("Sweep comparison written to %s", markdown_path)


def _job_number(job_dir: Path) -> tuple[float, str]:
    """Sort key: Hydra names job folders `<job number>_<overrides>`; names without a number go last."""
    match = re.match(r"\d+", job_dir.name)
    return (int(match.group()) if match else math.inf, job_dir.name)


def _load_job(job_dir: Path) -> dict[str, Any]:
    job = {"job": job_dir.name, "path": job_dir, "status": "failed", "metrics": None, "error": None}
    metrics_path, error_path = job_dir / METRICS_FILE, job_dir / ERROR_FILE
    if metrics_path.is_file():
        try:
            return job | {"status": "completed", "metrics": json.loads(metrics_path.read_text())}
        except json.JSONDecodeError as error:
            return job | {"error": f"unreadable {METRICS_FILE}: {error}"}
    if error_path.is_file():
        lines = error_path.read_text().splitlines()
        return job | {"error": lines[0] if lines else f"empty {ERROR_FILE}"}
    return job | {"error": f"no {METRICS_FILE}"}


def _overrides(job: dict[str, Any]) -> dict[str, str]:
    """A job's command-line overrides as {key: value} (the launch's, as test_metrics.json records them)."""
    pairs = (override.split("=", 1) for override in job["metrics"].get("overrides", []) if "=" in override)
    return {key: value for key, value in pairs}


def _differing_keys(completed: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value is not the same in every completed job, in the order the jobs name them."""
    overrides = [_overrides(job) for job in completed]
    keys = list(dict.fromkeys(key for pairs in overrides for key in pairs))
    return [key for key in keys if len({pairs.get(key) for pairs in overrides}) > 1]


def _baseline_rows(completed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per baseline and distinct set of values: jobs tested on the same data share their baselines."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for job in completed:
        metrics = job["metrics"]
        for baseline, curves in metrics["rel_l2"].items():
            if baseline == MODEL:
                continue
            # Rounded: the same data gives the same baselines up to the last bits of another device's arithmetic.
            rounded = {name: [float(f"{value:.6g}") for value in values] for name, values in curves.items()}
            key = (baseline, json.dumps(rounded, sort_keys=True))
            row = rows.setdefault(
                key,
                {
                    "baseline": baseline,
                    "rel_l2": curves,
                    "rel_l2_se": metrics.get("rel_l2_se", {}).get(baseline, {}),
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


def _model_curves(metrics: dict[str, Any]) -> dict[str, dict[str, list]]:
    """A job's model errors and their standard errors over test trajectories, as the table cells read them."""
    return {"rel_l2": metrics["rel_l2"][MODEL], "rel_l2_se": metrics.get("rel_l2_se", {}).get(MODEL, {})}


def _value(curves: dict[str, list], name: str, lead: int) -> float | None:
    """The value of a per-lead curve at a lead hour (leads start at 1), None when missing or undefined."""
    values = curves.get(name, [])
    value = values[lead - 1] if lead <= len(values) else None
    return None if value is None or not math.isfinite(value) else value


def _cell(source: dict[str, Any], name: str, lead: int) -> str:
    """`mean +- standard error` (two digits: its own uncertainty allows no more) of a job, configuration or baseline
    row; empty when it did not reach the lead."""
    mean = _value(source["rel_l2"], name, lead)
    if mean is None:
        return ""
    standard_error = _value(source.get("rel_l2_se", {}), name, lead)
    return _format(mean) if standard_error is None else f"{_format(mean)} ± {standard_error:.2g}"


def _summary(
    sweep_name: str,
    jobs: list[dict[str, Any]],
    configurations: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    leads: list[int],
) -> str:
    completed = [job for job in jobs if job["status"] == "completed"]
    trajectories = sorted({job["metrics"].get("num_trajectories") for job in completed} - {None})
    lines = [
        f"# Sweep comparison: {sweep_name}",
        "",
        f"{len(jobs)} jobs: {len(completed)} completed, {len(jobs) - len(completed)} failed; "
        f"{len(configurations)} configurations. Mean over channels of the area-weighted relative L2 error in "
        "normalised units (lower is better) ± one standard error over "
        f"{'/'.join(map(str, trajectories)) or 'the'} test trajectories; baselines are rows below the jobs.",
    ]
    if not completed:
        return "\n".join(lines)
    header = ["job", "model", "parameters", "train time [s]", *(f"+{lead} h" for lead in leads)]
    lines += ["", _table_header(header)]
    for job in jobs:
        if job["status"] != "completed":
            lines.append(_table_line([f"{job['label']} (failed)", "", "", "", *("" for _ in leads)]))
            continue
        metrics = job["metrics"]
        train_time = metrics.get("train_time_s")
        lines.append(
            _table_line(
                [
                    job["label"],
                    metrics.get("model"),
                    metrics.get("parameters"),
                    None if train_time is None else round(train_time),
                    *(_cell(_model_curves(metrics), "mean", lead) for lead in leads),
                ]
            )
        )
    lines += [
        _table_line([row["label"], "baseline", "", "", *(_cell(row, "mean", lead) for lead in leads)])
        for row in baselines
    ]
    return "\n".join(lines)


def _seed_section(configurations: list[dict[str, Any]], leads: list[int]) -> str:
    if all(len(config["jobs"]) == 1 for config in configurations):
        return ""
    lines = [
        "## Across seeds",
        "",
        "Jobs that differ only in `seed`: mean over seeds ± standard error across seeds, and (sd) the seeds' "
        "standard deviation. A configuration of one job shows its standard error over test trajectories.",
        "",
        _table_header(["configuration", "model", "seeds", *(f"+{lead} h" for lead in leads)]),
    ]
    for config in configurations:
        cells = []
        for lead in leads:
            spread = _value(config["rel_l2_sd"], "mean", lead)
            cells.append(_cell(config, "mean", lead) + (f" (sd {spread:.2g})" if spread is not None else ""))
        lines.append(_table_line([config["label"], config["model"], len(config["jobs"]), *cells]))
    return "\n".join(lines)


def _winner_section(configurations: list[dict[str, Any]], baselines: list[dict[str, Any]], leads: list[int]) -> str:
    if not configurations:
        return "## Who wins\n\nNo completed jobs: nothing to compare."
    lines = [
        "## Who wins",
        "",
        f"Per lead, the configuration with the lowest mean error; a difference is significant where the "
        f"{CONFIDENCE:.0%} intervals do not overlap: mean ± t standard errors, with Student's t for the number of "
        "seeds (or of test trajectories, for a configuration of one job) less one degree of freedom.",
        "",
    ]
    return "\n".join(lines + [_lead_winner(configurations, baselines, lead) for lead in leads])


def _lead_winner(configurations: list[dict[str, Any]], baselines: list[dict[str, Any]], lead: int) -> str:
    """Which configuration has the lowest mean error at this lead hour, whether that is significant against the
    runner-up, and the best baseline for scale."""
    ranked = sorted(
        (config for config in configurations if _value(config["rel_l2"], "mean", lead) is not None),
        key=lambda config: _value(config["rel_l2"], "mean", lead),
    )
    best = ranked[0]
    text = f"- **+{lead} h**: lowest `{best['label']}` {_cell(best, 'mean', lead)}"
    if len(ranked) > 1:
        runner_up = ranked[1]
        verdict = "not significant" if _overlap(best, runner_up, lead) else "significant"
        text += f", then `{runner_up['label']}` {_cell(runner_up, 'mean', lead)}: difference {verdict}"
    else:
        text += " (the only configuration)"
    reached = [row for row in baselines if _value(row["rel_l2"], "mean", lead) is not None]
    if reached:
        baseline = min(reached, key=lambda row: _value(row["rel_l2"], "mean", lead))
        if _value(best["rel_l2"], "mean", lead) >= _value(baseline["rel_l2"], "mean", lead):
            verdict = "not beaten"
        else:
            verdict = "beaten, not significant" if _overlap(best, baseline, lead) else "beaten, significant"
        text += f"; best baseline {baseline['label']} {_cell(baseline, 'mean', lead)}: {verdict}"
    return text + "."


def _overlap(first: dict[str, Any], second: dict[str, Any], lead: int) -> bool:
    """Whether the confidence intervals overlap at a lead; without a standard error nothing is shown to differ.

    Student's t, not the normal 1.96: across three seeds the 95% interval is 4.3 standard errors wide each way.
    """
    from scipy.stats import t  # here: loading the callback at sweep start stays cheap

    intervals = []
    for source in (first, second):
        mean, standard_error = _value(source["rel_l2"], "mean", lead), _value(source.get("rel_l2_se", {}), "mean", lead)
        if standard_error is None or (source.get("samples") or 0) < 2:
            return True
        half_width = t.ppf((1 + CONFIDENCE) / 2, source["samples"] - 1) * standard_error
        intervals.append((mean - half_width, mean + half_width))
    (low_a, high_a), (low_b, high_b) = intervals
    return low_a <= high_b and low_b <= high_a


def _worse_than_section(completed: list[dict[str, Any]], channels: list[str]) -> str:
    """Per job and baseline, the first lead at which the job's mean error exceeds the baseline's, and the channels
    whose own first lead differs from it."""
    if not completed:
        return ""
    baselines = list(
        dict.fromkeys(name for job in completed for name in job["metrics"].get("first_lead_worse_than", {}))
    )
    lines = [
        "## First lead worse than each baseline",
        "",
        "The first lead at which a job's mean error exceeds the baseline's (never: not within its rollout); in "
        "brackets the channels whose first lead differs.",
        "",
        _table_header(["job", *baselines]),
    ]
    for job in completed:
        cells = []
        for baseline in baselines:
            by_name = job["metrics"].get("first_lead_worse_than", {}).get(baseline, {})
            differing = [
                f"{name} {_lead(by_name.get(name))}" for name in channels if by_name.get(name) != by_name.get("mean")
            ]
            cells.append(_lead(by_name.get("mean")) + (f" ({', '.join(differing)})" if differing else ""))
        lines.append(_table_line([job["label"], *cells]))
    return "\n".join(lines)


def _lead(hour: int | None) -> str:
    return "never" if hour is None else f"+{hour} h"


def _channel_section(
    jobs: list[dict[str, Any]], baselines: list[dict[str, Any]], channels: list[str], leads: list[int]
) -> str:
    completed = [job for job in jobs if job["status"] == "completed"]
    if not completed:
        return ""
    lines = ["## Per channel", "", "Relative L2 error ± one standard error over test trajectories."]
    for channel in channels:
        lines += ["", f"### {channel}", "", _table_header(["job", *(f"+{lead} h" for lead in leads)])]
        for job in completed:
            source = _model_curves(job["metrics"])
            lines.append(_table_line([job["label"], *(_cell(source, channel, lead) for lead in leads)]))
        lines += [_table_line([row["label"], *(_cell(row, channel, lead) for lead in leads)]) for row in baselines]
    return "\n".join(lines)


def _failed_section(jobs: list[dict[str, Any]]) -> str:
    """Failed jobs by folder name: where to look for train.log and error.txt."""
    failed = [job for job in jobs if job["status"] != "completed"]
    if not failed:
        return ""
    return "\n".join(["## Failed jobs", "", *(f"- `{job['job']}`: {job['error']}" for job in failed)])


def _csv_columns(names: list[str], leads: list[int], baselines: list[str]) -> list[str]:
    return [
        "forecast",
        "label",
        "configuration",
        "job",
        "status",
        "model",
        "parameters",
        "train_time_s",
        "num_trajectories",
        *(f"{metric}_{name}_{lead}h" for name in names for lead in leads for metric in ("rel_l2", "rel_l2_se")),
        *(f"first_lead_worse_than_{baseline}_{name}" for baseline in baselines for name in names),
        "error",
    ]


def _csv_row(
    source: dict[str, Any], configurations: list[dict[str, Any]], names: list[str], leads: list[int]
) -> dict[str, Any]:
    """One job or baseline row; cells it has no value for are left empty."""
    if "baseline" in source:  # a baseline row
        row = {
            "forecast": source["baseline"],
            "label": source["label"],
            "status": "completed",
            "num_trajectories": source["samples"],
        }
        curves = source
    else:
        row = {
            "forecast": MODEL,
            "label": source["label"],
            "job": source["job"],
            "status": source["status"],
            "error": source["error"],
        }
        metrics = source["metrics"]
        if metrics is None:
            return row
        row["configuration"] = next(config["label"] for config in configurations if source in config["jobs"])
        row |= {key: metrics.get(key) for key in ("model", "parameters", "train_time_s", "num_trajectories")}
        curves = _model_curves(metrics)
        for baseline, by_name in metrics.get("first_lead_worse_than", {}).items():
            for name in names:
                row[f"first_lead_worse_than_{baseline}_{name}"] = by_name.get(name)
    for name in names:
        for lead in leads:
            row[f"rel_l2_{name}_{lead}h"] = _value(curves["rel_l2"], name, lead)
            row[f"rel_l2_se_{name}_{lead}h"] = _value(curves.get("rel_l2_se", {}), name, lead)
    return row


def _table_header(columns: list[str]) -> str:
    return _table_line(columns) + "\n|" + "---|" * len(columns)


def _table_line(cells: list[Any]) -> str:
    return "| " + " | ".join(cell if isinstance(cell, str) else _format(cell) for cell in cells) + " |"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
