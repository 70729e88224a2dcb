"""comparison.md, comparison.csv, comparison_tests.csv and the figures of a sweep, from its job folders."""

from __future__ import annotations

from pathlib import Path

from evaluation.sweep import markdown
from evaluation.sweep.figures import write_figures
from evaluation.sweep.jobs import MEAN, baseline_rows, group_configurations, label_jobs
from evaluation.sweep.tables import write_jobs_csv, write_tests_csv
from evaluation.sweep.verdicts import verdicts
from runs.folder import collect_jobs

REPORT_LEAD_HOURS = (1, 5, 10, 20, 50, 100)  # rollout leads tabulated; those no job reached are left out


def write_comparison(sweep_dir: str | Path) -> Path:
    """Write the sweep's report into its folder; return the Markdown path.

    Jobs that differ only in `seed` form one configuration, summarised by the mean and spread across its seeds.
    Every baseline of the jobs' test_metrics.json is a row beside the jobs, once per distinct set of values (jobs
    on the same data share them). Leads are hours (the data steps one hour).
    """
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    completed = [job for job in jobs if job["status"] == "completed"]
    label_jobs(jobs)
    configurations = group_configurations(completed)
    baselines = baseline_rows(completed)
    channels = list(dict.fromkeys(channel for job in completed for channel in job["metrics"]["channels"]))
    leads = [lead for lead in REPORT_LEAD_HOURS if any(lead in job["metrics"]["lead_hours"] for job in completed)]
    found = verdicts(configurations, leads)

    write_jobs_csv(sweep_dir / "comparison.csv", jobs, configurations, baselines, [*channels, MEAN], leads)
    write_tests_csv(sweep_dir / "comparison_tests.csv", found)
    figures = write_figures(sweep_dir, completed, configurations, baselines, channels)
    sections = [
        markdown.summary(sweep_dir.name, jobs, configurations, baselines, leads),
        markdown.seed_section(configurations, leads),
        markdown.verdict_section(found),
        markdown.worse_than_section(completed, channels),
        markdown.channel_section(completed, baselines, channels, leads),
        markdown.failed_section(jobs),
        "\n".join(f"![{title}]({path.name})" for title, path in figures.items()),
    ]
    markdown_path = sweep_dir / "comparison.md"
    markdown_path.write_text("\n\n".join(section for section in sections if section) + "\n")
    return markdown_path
