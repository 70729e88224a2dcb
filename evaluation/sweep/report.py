"""comparison.md, comparison.csv, comparison_tests.csv, comparison_physics_tests.csv and the figures of a sweep, from
its job folders or from their evaluations (evaluate.py), of one sweep folder or several.

    python -m evaluation.sweep.report <sweep folder> [<sweep folder> ...] [--evaluation OVERRIDE ...] [--into FOLDER]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from evaluation.sweep import markdown
from evaluation.sweep.figures import write_figures, write_physics_figures
from evaluation.sweep.jobs import MEAN, baseline_rows, group_configurations, label_jobs
from evaluation.sweep.physics import physics_report, physics_sections
from evaluation.sweep.tables import QUANTITY_TESTS_COLUMNS, write_jobs_csv, write_tests_csv
from evaluation.sweep.verdicts import verdicts
from runs.folder import collect_jobs, evaluation_comparison_folder

REPORT_LEAD_HOURS = (1, 5, 10, 20, 50, 100, 200, 500)  # rollout leads tabulated; those no job reached are left out


def write_comparison(
    sweep_dirs: str | Path | Sequence[str | Path],
    into: str | Path | None = None,
    evaluation: list[str] | None = None,
) -> Path:
    """Write the report of one sweep folder or several (a study run as several multiruns); return the Markdown path.

    Jobs that differ only in `seed` form one configuration, summarised by the mean and spread across its seeds,
    whichever folder they lie in. Every baseline of the jobs' test_metrics.json is a row beside the jobs, once per
    distinct set of values (jobs on the same data share them). Leads are hours (the data steps one hour).

    ``evaluation``: evaluate.py's overrides (e.g. ["eval.rollout_steps=500"]): each job's results are those of its
    newest matching evaluation (`runs.folder.find_evaluation`), and a job without one shows as missing. The report
    goes into ``into``; by default, the sweep folder (one folder, its own results) or <sweep>/eval_<overrides>/ (one
    folder, an evaluation); several folders need ``into``. `report_folder` says what it refuses.
    """
    folders = [Path(sweep_dirs)] if isinstance(sweep_dirs, str | Path) else [Path(folder) for folder in sweep_dirs]
    target = report_folder(folders, into, evaluation)
    jobs = []
    for number, folder in enumerate(folders, 1):
        found = collect_jobs(folder, evaluation)
        if len(folders) > 1:
            for job in found:
                job |= {"sweep": number, "job": f"{folder.name}/{job['job']}"}
        jobs += found
    target.mkdir(parents=True, exist_ok=True)
    completed = [job for job in jobs if job["status"] == "completed"]
    label_jobs(jobs)
    configurations = group_configurations(completed)
    baselines = baseline_rows(completed)
    channels = list(dict.fromkeys(channel for job in completed for channel in job["metrics"]["channels"]))
    leads = [lead for lead in REPORT_LEAD_HOURS if any(lead in job["metrics"]["lead_hours"] for job in completed)]
    found = verdicts(configurations, leads)
    physics = physics_report(configurations, leads)

    write_jobs_csv(target / "comparison.csv", jobs, configurations, baselines, [*channels, MEAN], leads)
    write_tests_csv(target / "comparison_tests.csv", found)
    if physics is not None:
        write_tests_csv(target / "comparison_physics_tests.csv", physics.every_verdict, QUANTITY_TESTS_COLUMNS)
    figures = write_figures(target, completed, configurations, baselines, channels)
    figures |= write_physics_figures(target, configurations, physics)
    sources = [f"s{number}: `{folder}`" for number, folder in enumerate(folders, 1)] if len(folders) > 1 else []
    if evaluation is not None:
        sources.append(f"Each job's newest evaluation with overrides `{' '.join(evaluation) or '(none)'}`.")
    title = folders[0].name if len(folders) == 1 else target.name
    sections = [
        markdown.summary(title, jobs, configurations, baselines, leads, sources),
        markdown.seed_section(configurations, leads),
        markdown.verdict_section(found),
        physics_sections(configurations, physics),
        markdown.worse_than_section(completed, channels),
        markdown.channel_section(completed, baselines, channels, leads),
        markdown.failed_section(jobs),
        markdown.missing_section(jobs),
        "\n".join(f"![{title}]({path.name})" for title, path in figures.items()),
    ]
    markdown_path = target / "comparison.md"
    markdown_path.write_text("\n\n".join(section for section in sections if section) + "\n")
    return markdown_path


def report_folder(folders: list[Path], into: str | Path | None, evaluation: list[str] | None) -> Path:
    """Where the report goes; ValueError, before anything is written, for a folder that is not there, several
    folders without ``into``, or a report of evaluations into a sweep folder (over the sweep's own report)."""
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise ValueError(f"no sweep folder {', '.join(missing)}: pass the folders of multiruns (their jobs' parent)")
    if into is None:
        if len(folders) > 1:
            raise ValueError("several sweep folders: name the report's own folder with --into (into=)")
        return folders[0] if evaluation is None else evaluation_comparison_folder(folders[0], evaluation)
    if evaluation is not None and Path(into).resolve() in {folder.resolve() for folder in folders}:
        raise ValueError(
            f"--into {into} is a sweep folder: a report of evaluations would write over the sweep's own report; "
            "leave --into out (<sweep>/eval_<overrides>/) or name another folder"
        )
    return Path(into)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the comparison report of one sweep folder or several.")
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders (a multirun's folder, its jobs inside)")
    parser.add_argument(
        "--evaluation",
        nargs="*",
        metavar="OVERRIDE",
        help="compare each job's newest evaluate.py evaluation with exactly these overrides, e.g. "
        "eval.rollout_steps=500 (none: evaluations without overrides); jobs without one show as missing",
    )
    parser.add_argument("--into", type=Path, help="the report's folder (needed with several sweep folders)")
    args = parser.parse_args()
    try:
        report_folder(args.folders, args.into, args.evaluation)
    except ValueError as error:
        parser.error(str(error))
    print(write_comparison(args.folders, args.into, args.evaluation))


if __name__ == "__main__":
    main()
