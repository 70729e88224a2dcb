"""The sweep comparison from synthetic job folders: labels, seed groups, verdicts (Welch across seeds, paired over
test trajectories from test_errors.npz, Holm over leads), baselines, failed jobs."""

import csv
import json
import logging

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from evaluation.statistics import holm
from evaluation.sweep.callback import ComparisonReport
from evaluation.sweep.jobs import group_configurations, label_jobs
from evaluation.sweep.report import write_comparison
from evaluation.sweep.verdicts import verdicts
from runs.folder import collect_jobs

CHANNELS = ["geopotential", "vorticity", "divergence"]
NAMES = [*CHANNELS, "mean"]
LEADS = list(range(1, 21))
BASELINES = {
    "persistence": [0.05 * lead for lead in LEADS],
    "climatology": [1.0 for _ in LEADS],
    "linear": [0.002 * lead for lead in LEADS],
}


def make_job(sweep_dir, number, overrides, scale=None, standard_error=0.001, error=None, edit=None, errors=None):
    """A job folder named as Hydra names it; with `scale` its model error grows as scale * lead hour, and `edit`
    changes its metrics in place before they are written. With `scale`, `errors` ({forecast: [trajectory, lead]},
    the same in every channel) is written as test_errors.npz, and test_metrics.json's errors are its means."""
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
    if errors is not None:
        write_errors(job_dir, errors, metrics)
    if edit is not None:
        edit(metrics)
    (job_dir / "test_metrics.json").write_text(json.dumps(metrics))
    return job_dir


def write_errors(job_dir, errors, metrics):
    """test_errors.npz in the shared format ([forecast, trajectory, channel, lead]) and test_metrics.json's means and
    standard errors over trajectories from it."""
    forecasts = list(errors)
    per_trajectory = np.stack([np.repeat(errors[name][:, None, :], len(CHANNELS), axis=1) for name in forecasts])
    np.savez(
        job_dir / "test_errors.npz",
        forecasts=np.array(forecasts),
        channels=np.array(CHANNELS),
        lead_hours=np.array(LEADS),
        rel_l2=per_trajectory,
    )
    count = per_trajectory.shape[1]
    metrics["num_trajectories"] = count
    for name, values in errors.items():
        metrics["rel_l2"][name] = dict.fromkeys(NAMES, values.mean(axis=0).tolist())
        metrics["rel_l2_se"][name] = dict.fromkeys(NAMES, (values.std(axis=0, ddof=1) / np.sqrt(count)).tolist())


def trajectory_errors(rng, model_scale, trajectories=16):
    """Errors per test trajectory and lead: the baselines as in BASELINES times a per-trajectory difficulty (the
    same test set for every job), the model scale * lead with noise of its own."""
    difficulty = np.random.default_rng(0).uniform(0.5, 1.5, (trajectories, 1))
    model = model_scale * np.array(LEADS) * difficulty * rng.uniform(0.9, 1.1, (trajectories, len(LEADS)))
    return {"model": model} | {name: difficulty * np.array(values) for name, values in BASELINES.items()}


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
        assert config["sd"]["mean"][19] == pytest.approx(at_20h.std(ddof=1))
        assert config["rel_l2_se"]["mean"][19] == pytest.approx(at_20h.std(ddof=1) / np.sqrt(3))
    single = configurations[2]
    assert single["rel_l2_se"]["mean"][19] == 0.001, "one seed: its standard error over test trajectories"
    assert single["sd"] == {}


def test_comparison_report_groups_seeds_and_tests_across_them(tmp_path):
    seed_sweep(tmp_path)

    markdown = write_comparison(tmp_path).read_text()

    table = markdown.split("## Across seeds")[1].split("##")[0]
    assert "| model=sfno lr=0.001 | sfno | 3 | 0.011 ± 0.00058 (sd 0.001) |" in table
    assert "| model=sfno lr=0.003 | sfno | 1 | 0.0115 ± 0.001 |" in table
    verdict_table = markdown.split("## Who wins")[1].split("##")[0]
    # Seeds 0.010/0.011/0.012 against 0.030/0.027/0.033 per lead hour: Welch's t = 10.6 on 2.5 degrees of freedom.
    sfno, fno = 20 * np.array([0.010, 0.011, 0.012]), 20 * np.array([0.030, 0.027, 0.033])
    p = stats.ttest_ind(sfno, fno, equal_var=False).pvalue
    assert "| +20 h | model=sfno lr=0.001 | model=fno lr=0.001 | -0.38 | [-0.513, -0.247] | " in verdict_table
    assert f"| {p:.2g} | {4 * p:.2g} | seeds (n=6) | better, significant |" in verdict_table
    assert (
        "| +1 h | model=sfno lr=0.001 | model=sfno lr=0.003 | -0.0005 |  |  |  | no test: not the same test "
        "trajectories, or no test_errors.npz |  |" in verdict_table
    ), "one seed and no per-trajectory errors: no test"
    assert "| +1 h | model=sfno lr=0.001 | linear | 0.009 | " in verdict_table, "against the best baseline"
    assert "| seeds (n=3) | worse, significant |" in verdict_table


def two_configurations(sweep_dir, seeds=3, scales=(0.010, 0.011)):
    """Two models (scales per lead hour) over `seeds` seeds, each job with its test_errors.npz on one test set."""
    rng = np.random.default_rng(7)
    number = 0
    for model, scale in zip(("sfno", "fno"), scales, strict=True):
        for seed in range(seeds):
            seed_scale = scale * rng.uniform(0.9, 1.1)
            errors = trajectory_errors(rng, seed_scale)
            make_job(sweep_dir, number, [f"model={model}", f"seed={seed}"], scale=seed_scale, errors=errors)
            number += 1


def test_a_two_configuration_sweep_tests_with_welch_on_the_jobs_own_mean_errors(tmp_path):
    """Issue #16's acceptance: comparison_tests.csv's p is Welch's test on the jobs' own mean errors, Holm-adjusted
    over the leads, and the model against its best baseline is paired over seeds."""
    two_configurations(tmp_path)

    write_comparison(tmp_path)

    rows = read_csv(tmp_path / "comparison_tests.csv")
    assert list(rows[0])[:8] == ["lead_h", "config", "other", "difference", "ci_low", "ci_high", "p", "p_holm"]
    jobs = [json.loads(path.read_text()) for path in tmp_path.glob("*/test_metrics.json")]

    def seed_means(model, forecast="model"):
        chosen = [metrics for metrics in jobs if metrics["model"] == model]
        return np.array(
            [[metrics["rel_l2"][forecast]["mean"][lead - 1] for lead in (1, 5, 10, 20)] for metrics in chosen]
        )

    between = [row for row in rows if row["other"].startswith("model=")]
    assert [(row["lead_h"], row["config"], row["other"]) for row in between] == [
        (str(lead), "model=sfno", "model=fno") for lead in (1, 5, 10, 20)
    ]
    expected = stats.ttest_ind(seed_means("sfno"), seed_means("fno"), equal_var=False)
    assert [float(row["p"]) for row in between] == pytest.approx(expected.pvalue, rel=1e-9)
    assert [float(row["p_holm"]) for row in between] == pytest.approx(holm(expected.pvalue))
    assert [float(row["difference"]) for row in between] == pytest.approx(
        seed_means("sfno").mean(axis=0) - seed_means("fno").mean(axis=0)
    )
    assert {(row["test"], row["n"], row["over"]) for row in between} == {("welch", "6", "seeds")}

    against_baseline = [row for row in rows if row["other"] == "linear"]
    assert len(against_baseline) == 4
    paired = stats.ttest_rel(seed_means("sfno"), seed_means("sfno", "linear"))
    assert [float(row["p"]) for row in against_baseline] == pytest.approx(paired.pvalue, rel=1e-9)


def test_with_one_seed_each_the_test_is_paired_over_trajectories_and_says_it_is_blind_to_seeds(tmp_path):
    two_configurations(tmp_path, seeds=1, scales=(0.010, 0.012))
    jobs = collect_jobs(tmp_path)
    label_jobs(jobs)

    found = verdicts(group_configurations(jobs), [1, 20])

    errors = [np.load(job["path"] / "test_errors.npz")["rel_l2"] for job in jobs]
    sfno, fno = (array[0, :, :, 19].mean(axis=1) for array in errors)  # the model, channel mean, at 20 h
    at_20h = {verdict.other: verdict for verdict in found if verdict.lead == 20}
    assert at_20h["model=fno"].comparison.p == pytest.approx(stats.ttest_rel(sfno, fno).pvalue, rel=1e-9)
    assert at_20h["model=fno"].over == "test trajectories, blind to seed variance"
    assert at_20h["model=fno"].comparison.n == 16
    linear = errors[0][list(BASELINES).index("linear") + 1, :, :, 19].mean(axis=1)
    assert at_20h["linear"].comparison.p == pytest.approx(stats.ttest_rel(sfno, linear).pvalue, rel=1e-9)
    assert at_20h["linear"].over == "test trajectories, blind to seed variance"


def test_jobs_on_different_test_sets_are_not_paired(tmp_path):
    rng = np.random.default_rng(1)
    make_job(tmp_path, 0, ["model=sfno", "data.amplitude=1"], scale=0.01, errors=trajectory_errors(rng, 0.01))
    other_data = trajectory_errors(rng, 0.02)
    other_data["linear"] = other_data["linear"] * 1.5
    make_job(tmp_path, 1, ["model=fno", "data.amplitude=2"], scale=0.02, errors=other_data)
    jobs = collect_jobs(tmp_path)
    label_jobs(jobs)

    (between, _) = [verdict for verdict in verdicts(group_configurations(jobs), [5]) if verdict.lead == 5]

    assert between.comparison is None and between.over.startswith("no test: not the same test trajectories")


def test_comparison_report_first_leads_worse(tmp_path):
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

    with caplog.at_level(logging.INFO, logger="evaluation.sweep.callback"):
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}}))

    assert (tmp_path / "comparison.md").is_file()
    assert "Sweep comparison written to" in caplog.text
    assert "Could not write the sweep comparison" in caplog.text
