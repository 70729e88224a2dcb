"""The sweep comparison from synthetic job folders: labels, seed groups, significance, baselines, failed jobs."""

import csv
import json
import logging

import numpy as np
import pytest
from omegaconf import OmegaConf

from evaluation.report import ComparisonReport, collect_jobs, group_configurations, label_jobs, write_comparison

CHANNELS = ["geopotential", "vorticity", "divergence"]
NAMES = [*CHANNELS, "mean"]
LEADS = list(range(1, 21))
BASELINES = {
    "persistence": [0.05 * lead for lead in LEADS],
    "climatology": [1.0 for _ in LEADS],
    "linear": [0.002 * lead for lead in LEADS],
}


def make_job(sweep_dir, number, overrides, scale=None, standard_error=0.001, error=None, edit=None):
    """A job folder named as Hydra names it; with `scale` its model error grows as scale * lead hour, and `edit`
    changes its metrics in place before they are written."""
    job_dir = sweep_dir / "_".join([str(number), "sfno32x64", *overrides])
    (job_dir / ".hydra").mkdir(parents=True)
    if error is not None:
        (job_dir / "error.txt").write_text(f"{error}\nTraceback ...\n")
    if scale is None:
        return job_dir
    curves = {"model": [scale * lead for lead in LEADS], **BASELINES}
    metrics = {
        "model": dict(override.split("=") for override in overrides).get("model", "sfno"),
        "data": "32x64",
        "parameters": 1000,
        "train_time_s": 12.3,
        "overrides": ["experiment=sfno_vs_fno", *overrides],
        "channels": CHANNELS,
        "lead_hours": LEADS,
        "num_trajectories": 32,
        "rel_l2": {forecast: dict.fromkeys(NAMES, values) for forecast, values in curves.items()},
        "rel_l2_se": {forecast: dict.fromkeys(NAMES, [standard_error] * len(LEADS)) for forecast in curves},
        "rmse": {forecast: dict.fromkeys(CHANNELS, values) for forecast, values in curves.items()},
        "first_lead_worse_than": {
            baseline: dict.fromkeys(
                NAMES, next((lead for lead, m, b in zip(LEADS, curves["model"], values, strict=True) if m > b), None)
            )
            for baseline, values in BASELINES.items()
        },
        "power_spectrum": {
            "lead_hours": [1, 20],
            "target": dict.fromkeys(CHANNELS, [[1.0, 0.1, 0.01]] * 2),
            "prediction": dict.fromkeys(CHANNELS, [[1.0, 0.2, 0.05]] * 2),
        },
    }
    if edit is not None:
        edit(metrics)
    (job_dir / "test_metrics.json").write_text(json.dumps(metrics))
    return job_dir


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_collect_jobs_orders_by_job_number_and_reports_failures(tmp_path):
    make_job(tmp_path, 10, ["model=fno"], scale=0.01)
    make_job(tmp_path, 2, ["model=sfno"], error="CUDA out of memory")
    make_job(tmp_path, 1, ["model=sfno"])
    (tmp_path / "not_a_job").mkdir()

    jobs = collect_jobs(tmp_path)

    assert [job["job"].split("_")[0] for job in jobs] == ["1", "2", "10"]
    assert [job["status"] for job in jobs] == ["failed", "failed", "completed"]
    assert jobs[0]["error"] == "no test_metrics.json"
    assert jobs[1]["error"] == "CUDA out of memory"
    assert jobs[2]["metrics"]["lead_hours"] == LEADS


def seed_sweep(sweep_dir):
    """Two models over three seeds and a learning rate for one seed; seeds of a model differ by a few percent."""
    scales = {"sfno": [0.010, 0.011, 0.012], "fno": [0.030, 0.027, 0.033]}
    number = 0
    for model, per_seed in scales.items():
        for seed, scale in enumerate(per_seed):
            make_job(sweep_dir, number, [f"model={model}", "training.lr=0.001", f"seed={seed}"], scale=scale)
            number += 1
    make_job(sweep_dir, number, ["model=sfno", "training.lr=0.003", "seed=0"], scale=0.0115)
    return scales


def test_jobs_that_differ_only_in_seed_form_one_configuration(tmp_path):
    scales = seed_sweep(tmp_path)
    jobs = collect_jobs(tmp_path)
    label_jobs(jobs)

    assert jobs[0]["label"] == "#0 model=sfno lr=0.001 seed=0", "short labels: the overrides that differ"
    configurations = group_configurations(jobs)

    assert [config["label"] for config in configurations] == [
        "model=sfno lr=0.001",
        "model=fno lr=0.001",
        "model=sfno lr=0.003",
    ]
    assert [len(config["jobs"]) for config in configurations] == [3, 3, 1]
    for config, per_seed in zip(configurations, scales.values(), strict=False):
        at_20h = 20 * np.array(per_seed)
        assert config["rel_l2"]["mean"][19] == pytest.approx(at_20h.mean())
        assert config["rel_l2_sd"]["mean"][19] == pytest.approx(at_20h.std(ddof=1))
        assert config["rel_l2_se"]["mean"][19] == pytest.approx(at_20h.std(ddof=1) / np.sqrt(3))
    single = configurations[2]
    assert single["rel_l2_se"]["mean"][19] == 0.001, "one seed: its standard error over test trajectories"
    assert single["rel_l2_sd"] == {}


def test_comparison_report_groups_seeds_and_says_what_is_significant(tmp_path):
    seed_sweep(tmp_path)

    markdown = write_comparison(tmp_path).read_text()

    table = markdown.split("## Across seeds")[1].split("##")[0]
    assert "| model=sfno lr=0.001 | sfno | 3 | 0.011 ± 0.00058 (sd 0.001) |" in table
    assert "| model=sfno lr=0.003 | sfno | 1 | 0.0115 ± 0.001 |" in table
    # At 1 h, sfno's seeds (0.011 +- 0.00058) and the lr=0.003 job (0.0115 +- 0.001) overlap; fno is far off.
    assert (
        "- **+1 h**: lowest `model=sfno lr=0.001` 0.011 ± 0.00058, then `model=sfno lr=0.003` 0.0115 ± 0.001: "
        "difference not significant; best baseline linear 0.002 ± 0.001: not beaten." in markdown
    )
    assert (
        "- **+20 h**: lowest `model=sfno lr=0.001` 0.22 ± 0.012, then `model=sfno lr=0.003` 0.23 ± 0.001: diff"
        in markdown
    )


def test_significance_across_few_seeds_uses_students_t(tmp_path):
    """Means 0.011 and 0.0145 at 1 h, each +- 0.00058 over three seeds: the normal 1.96 would call the difference
    significant, Student's t with two degrees of freedom (4.3) does not."""
    for number in range(6):
        model, seed = ("sfno", "fno")[number // 3], number % 3
        scale = (0.010 if model == "sfno" else 0.0135) + 0.001 * seed
        make_job(tmp_path, number, [f"model={model}", f"seed={seed}"], scale=scale)

    markdown = write_comparison(tmp_path).read_text()

    assert (
        "- **+1 h**: lowest `model=sfno` 0.011 ± 0.00058, then `model=fno` 0.0145 ± 0.00058: difference not" in markdown
    )


def test_comparison_report_significant_win_and_first_leads_worse(tmp_path):
    make_job(tmp_path, 0, ["model=sfno"], scale=0.001, standard_error=0.0001)
    make_job(
        tmp_path,
        1,
        ["model=fno"],
        scale=0.003,
        standard_error=0.0001,
        edit=lambda metrics: metrics["first_lead_worse_than"]["linear"].update(vorticity=3),
    )

    markdown = write_comparison(tmp_path).read_text()

    assert "## Across seeds" not in markdown, "no configuration has several seeds"
    assert (
        "- **+1 h**: lowest `model=sfno` 0.001 ± 0.0001, then `model=fno` 0.003 ± 0.0001: difference significant; "
        "best baseline linear 0.002 ± 0.0001: beaten, significant." in markdown
    )
    assert "| job | persistence | climatology | linear |" in markdown
    assert "| #0 model=sfno | never | never | never |" in markdown
    assert "| #1 model=fno | never | never | +1 h (vorticity +3 h) |" in markdown


def small_sweep(sweep_dir):
    """Two models, one of whose seeds failed."""
    make_job(sweep_dir, 0, ["model=sfno", "seed=0"], scale=0.01)
    make_job(sweep_dir, 1, ["model=fno", "seed=0"], scale=0.04)
    make_job(sweep_dir, 2, ["model=fno", "seed=1"], error="NaN loss")


def test_compact_table_has_baselines_as_rows_and_channels_below(tmp_path):
    small_sweep(tmp_path)

    markdown = write_comparison(tmp_path).read_text()

    assert "3 jobs: 2 completed, 1 failed; 2 configurations." in markdown
    summary = markdown.split("## ")[0]
    assert "| job | model | parameters | train time [s] | +1 h | +5 h | +10 h | +20 h |" in summary
    assert "| #0 model=sfno | sfno | 1000 | 12 | 0.01 ± 0.001 | 0.05 ± 0.001 | 0.1 ± 0.001 | 0.2 ± 0.001 |" in summary
    assert "| #2 (failed) |" in summary
    assert "| persistence | baseline |  |  | 0.05 ± 0.001 |" in summary, "baselines shared by the jobs: one row each"
    assert summary.count("| linear | baseline |") == 1
    assert "sfno32x64" not in summary, "labels, not folder names"
    assert "### vorticity" in markdown.split("## Per channel")[1]
    assert "- `2_sfno32x64_model=fno_seed=1`: NaN loss" in markdown
    assert "![power spectrum per job](power_spectrum_comparison.png)" in markdown
    assert (tmp_path / "power_spectrum_comparison.png").stat().st_size > 0
    assert (tmp_path / "rollout_comparison.png").stat().st_size > 0


def test_baselines_of_different_data_get_a_row_per_job(tmp_path):
    make_job(tmp_path, 0, ["data.amplitude=1"], scale=0.01)
    linear = BASELINES["linear"]
    make_job(
        tmp_path,
        1,
        ["data.amplitude=10"],
        scale=0.01,
        edit=lambda metrics: metrics["rel_l2"]["linear"].update(mean=[10 * value for value in linear]),
    )
    make_job(  # the same data on another device: the last bits differ
        tmp_path,
        2,
        ["data.amplitude=1"],
        scale=0.02,
        edit=lambda metrics: metrics["rel_l2"]["linear"].update(mean=[value * (1 + 1e-9) for value in linear]),
    )

    summary = write_comparison(tmp_path).read_text().split("## ")[0]

    assert "| persistence | baseline |" in summary
    assert "| linear (#0, #2) | baseline |  |  | 0.002 ± 0.001 |" in summary
    assert "| linear (#1) | baseline |  |  | 0.02 ± 0.001 |" in summary


def test_comparison_csv_stays_machine_readable(tmp_path):
    small_sweep(tmp_path)

    write_comparison(tmp_path)

    rows = read_csv(tmp_path / "comparison.csv")
    assert [row["forecast"] for row in rows] == ["model", "model", "model", "persistence", "climatology", "linear"]
    assert [row["status"] for row in rows] == [
        "completed",
        "completed",
        "failed",
        "completed",
        "completed",
        "completed",
    ]
    first = rows[0]
    assert first["label"] == "#0 model=sfno" and first["configuration"] == "model=sfno"
    assert first["job"] == "0_sfno32x64_model=sfno_seed=0"
    assert float(first["rel_l2_vorticity_1h"]) == 0.01
    assert float(first["rel_l2_se_mean_20h"]) == 0.001
    assert float(first["rel_l2_mean_20h"]) == 0.2
    assert first["first_lead_worse_than_persistence_mean"] == ""  # never
    assert first["first_lead_worse_than_linear_mean"] == "1"
    assert rows[2]["error"] == "NaN loss"
    assert float(rows[3]["rel_l2_mean_5h"]) == 0.25


def test_write_comparison_leaves_out_leads_beyond_the_rollout(tmp_path):
    def eight_hours(metrics):
        metrics["lead_hours"] = LEADS[:8]
        for block in ("rel_l2", "rel_l2_se"):
            for by_name in metrics[block].values():
                by_name.update({name: per_lead[:8] for name, per_lead in by_name.items()})

    make_job(tmp_path, 0, ["model=sfno"], scale=0.01, edit=eight_hours)

    write_comparison(tmp_path)

    columns = read_csv(tmp_path / "comparison.csv")[0].keys()
    assert {"rel_l2_mean_1h", "rel_l2_mean_5h"} <= columns
    assert "rel_l2_mean_10h" not in columns


def test_write_comparison_without_completed_jobs(tmp_path):
    make_job(tmp_path, 0, ["model=sfno"], error="NaN loss")

    markdown = write_comparison(tmp_path).read_text()

    assert "No completed jobs: nothing to compare." in markdown
    assert "- `0_sfno32x64_model=sfno`: NaN loss" in markdown
    assert not (tmp_path / "rollout_comparison.png").exists()
    assert [row["status"] for row in read_csv(tmp_path / "comparison.csv")] == ["failed"]


def test_callback_writes_report_and_never_raises(tmp_path, caplog):
    make_job(tmp_path, 0, ["model=sfno"], scale=0.01)
    callback = ComparisonReport()

    with caplog.at_level(logging.INFO, logger="evaluation.report"):
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}}))

    assert (tmp_path / "comparison.md").is_file()
    assert "Sweep comparison written to" in caplog.text
    assert "Could not write the sweep comparison" in caplog.text
