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

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

METRICS_FILE = "test_metrics.json"
ERROR_FILE = "error.txt"
REPORT_LEAD_HOURS = (1, 5, 10, 20)  # rollout leads tabulated; those no job reached are left out
MODEL = "model"  # test_metrics.json's name of the trained network's forecast; the others are baselines


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job of the sweep with its test metrics, or why it has none, so that failed jobs show in the report.

    Job folders are the subfolders holding `.hydra/`, ordered by the job number that starts their name. Each job:
    {"job": folder name, "path": Path, "status": "completed" | "failed", "metrics": dict | None, "error": str | None}.
    """
    job_dirs = [path for path in Path(sweep_dir).iterdir() if (path / ".hydra").is_dir()]
    return [_load_job(job_dir) for job_dir in sorted(job_dirs, key=_job_number)]


def write_comparison(sweep_dir: str | Path) -> Path:
    """Write comparison.md, comparison.csv and rollout_comparison.png into the sweep folder; return the Markdown path.

    Rollout leads are lead hours (the data steps one hour); the one-step columns are each job's first lead.
    """
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    completed = [job for job in jobs if job["status"] == "completed"]
    channels = list(dict.fromkeys(channel for job in completed for channel in job["metrics"]["channels"]))
    leads = [lead for lead in REPORT_LEAD_HOURS if any(lead in job["metrics"]["lead_hours"] for job in completed)]
    columns = _columns(channels, leads)
    rows = [_table_row(job, channels, leads) for job in jobs]

    with (sweep_dir / "comparison.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    plot_path = sweep_dir / "rollout_comparison.png"
    if completed:
        # Imported here so that loading the callback at sweep start does not pull in matplotlib.
        from evaluation.plots import plot_rollout_error

        curves = {
            job["job"]: {
                "model": job["metrics"]["rel_l2"]["model"]["mean"],
                "persistence": job["metrics"]["rel_l2"]["persistence"]["mean"],
                "lead_hours": job["metrics"]["lead_hours"],
            }
            for job in completed
        }
        plot_rollout_error(curves, plot_path, title=f"Mean relative L2 error: {sweep_dir.name}")

    markdown_path = sweep_dir / "comparison.md"
    markdown_path.write_text(_markdown(sweep_dir.name, jobs, columns, rows, leads, plot_path if completed else None))
    return markdown_path


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


def _columns(channels: list[str], leads: list[int]) -> list[str]:
    return [
        "job",
        "model",
        "parameters",
        "train_time_s",
        *(f"rel_l2_1step_{name}" for name in [*channels, "mean"]),
        *(f"rel_l2_mean_{lead}h" for lead in leads),
        *(f"persistence_{lead}h" for lead in leads),
        "first_lead_worse_than_persistence_h",
        "status",
        "error",
    ]


def _table_row(job: dict[str, Any], channels: list[str], leads: list[int]) -> dict[str, Any]:
    """One job's cells; cells it has no value for are left out (empty in the tables)."""
    row: dict[str, Any] = {"job": job["job"], "status": job["status"], "error": job["error"]}
    metrics = job["metrics"]
    if metrics is None:
        return row
    model_error, persistence_error = metrics["rel_l2"]["model"], metrics["rel_l2"]["persistence"]
    row |= {"model": metrics.get("model"), "parameters": metrics.get("parameters")}
    if metrics.get("train_time_s") is not None:
        row["train_time_s"] = round(metrics["train_time_s"])
    for name in [*channels, "mean"]:
        if name in model_error:
            row[f"rel_l2_1step_{name}"] = model_error[name][0]
    lead_index = {lead: index for index, lead in enumerate(metrics["lead_hours"])}
    for lead in leads:
        if lead in lead_index:
            row[f"rel_l2_mean_{lead}h"] = model_error["mean"][lead_index[lead]]
            row[f"persistence_{lead}h"] = persistence_error["mean"][lead_index[lead]]
    worse_from = metrics.get("first_lead_worse_than_persistence")
    row["first_lead_worse_than_persistence_h"] = "never" if worse_from is None else worse_from
    return row


def _markdown(
    sweep_name: str,
    jobs: list[dict[str, Any]],
    columns: list[str],
    rows: list[dict[str, Any]],
    leads: list[int],
    plot_path: Path | None,
) -> str:
    completed = [job for job in jobs if job["status"] == "completed"]
    failed = [job for job in jobs if job["status"] != "completed"]
    table_columns = [column for column in columns if column != "error"]  # errors are listed below the table
    lines = [
        f"# Sweep comparison: {sweep_name}",
        "",
        f"{len(jobs)} jobs: {len(completed)} completed, {len(failed)} failed. rel_l2 is the area-weighted relative L2 "
        "error in normalised units (lower is better); `1step` is the first lead, `persistence` keeps the initial "
        "state.",
        "",
        "| " + " | ".join(table_columns) + " |",
        "|" + "---|" * len(table_columns),
        *("| " + " | ".join(_format(row.get(column)) for column in table_columns) + " |" for row in rows),
        "",
        "## Who wins",
        "",
    ]
    if completed:
        lines += [_lead_winner(completed, lead) for lead in leads]
        lines += ["", "Against persistence at each job's last lead:", ""]
        lines += [_against_persistence(job) for job in completed]
    else:
        lines.append("No completed jobs: nothing to compare.")
    if failed:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- `{job['job']}`: {job['error']}" for job in failed]
    if plot_path is not None:
        lines += ["", f"![Mean relative L2 error against lead time]({plot_path.name})"]
    return "\n".join(lines) + "\n"


def _lead_winner(completed: list[dict[str, Any]], lead: int) -> str:
    """Which job has the lowest mean rel_l2 at this lead hour, with the runner-up and persistence for scale."""
    ranked = []  # (model error, persistence error, job) of the jobs that reached this lead
    for job in completed:
        lead_hours, rel_l2 = job["metrics"]["lead_hours"], job["metrics"]["rel_l2"]
        if lead in lead_hours:
            index = lead_hours.index(lead)
            ranked.append((rel_l2["model"]["mean"][index], rel_l2["persistence"]["mean"][index], job["job"]))
    ranked.sort()
    best_error, persistence_error, best_job = ranked[0]
    runner_up = f"next best `{ranked[1][2]}` {_format(ranked[1][0])}; " if len(ranked) > 1 else ""
    return (
        f"- **+{lead} h**: `{best_job}` has the lowest mean rel_l2, {_format(best_error)} "
        f"({runner_up}persistence {_format(persistence_error)})."
    )


def _against_persistence(job: dict[str, Any]) -> str:
    metrics = job["metrics"]
    model_error = metrics["rel_l2"]["model"]["mean"][-1]
    persistence_error = metrics["rel_l2"]["persistence"]["mean"][-1]
    verdict = "beats" if model_error < persistence_error else "does not beat"
    worse_from = metrics.get("first_lead_worse_than_persistence")
    since = f"; worse than persistence from +{worse_from} h" if worse_from is not None else ""
    return (
        f"- `{job['job']}` {verdict} persistence at +{metrics['lead_hours'][-1]} h "
        f"({_format(model_error)} vs {_format(persistence_error)}){since}."
    )


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
