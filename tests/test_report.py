"""The sweep comparison from synthetic job folders: table rows, winners, failed jobs and empty sweeps."""

import csv
import json
import logging

from omegaconf import OmegaConf

from evaluation.report import ComparisonReport, collect_jobs, write_comparison

CHANNELS = ["geopotential", "vorticity", "divergence"]
LEADS = list(range(1, 21))
PERSISTENCE = [0.05 * lead for lead in LEADS]


def make_job(sweep_dir, name, scale=None, error=None):
    """A job folder; with `scale` its model error grows linearly as scale * lead and it overtakes persistence."""
    job_dir = sweep_dir / name
    (job_dir / ".hydra").mkdir(parents=True)
    if error is not None:
        (job_dir / "error.txt").write_text(f"{error}\nTraceback ...\n")
    if scale is None:
        return
    model = [scale * lead for lead in LEADS]
    worse = [lead for lead, m, p in zip(LEADS, model, PERSISTENCE, strict=True) if m > p]
    metrics = {
        "model": name.split("_")[1],
        "data": "32x64",
        "parameters": 1000,
        "train_time_s": 12.3,
        "overrides": [],
        "channels": CHANNELS,
        "lead_hours": LEADS,
        "rel_l2": {
            "model": {name: model for name in [*CHANNELS, "mean"]},
            "persistence": {name: PERSISTENCE for name in [*CHANNELS, "mean"]},
        },
        "rmse": {"model": {}, "persistence": {}},
        "first_lead_worse_than_persistence": worse[0] if worse else None,
    }
    (job_dir / "test_metrics.json").write_text(json.dumps(metrics))


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_collect_jobs_orders_by_job_number_and_reports_failures(tmp_path):
    make_job(tmp_path, "10_fno", scale=0.01)
    make_job(tmp_path, "2_sfno", error="CUDA out of memory")
    make_job(tmp_path, "1_sfno")
    (tmp_path / "not_a_job").mkdir()

    jobs = collect_jobs(tmp_path)

    assert [job["job"] for job in jobs] == ["1_sfno", "2_sfno", "10_fno"]
    assert [job["status"] for job in jobs] == ["failed", "failed", "completed"]
    assert jobs[0]["error"] == "no test_metrics.json"
    assert jobs[1]["error"] == "CUDA out of memory"
    assert jobs[2]["metrics"]["lead_hours"] == LEADS


def test_write_comparison_tables_winners_and_failures(tmp_path):
    make_job(tmp_path, "0_sfno", scale=0.01)  # better everywhere, beats persistence to the end
    make_job(tmp_path, "1_fno", scale=0.04)  # worse than the first, still beats persistence
    make_job(tmp_path, "2_fno", scale=0.08)  # worse than persistence from the first lead
    make_job(tmp_path, "3_sfno", error="CUDA out of memory")

    markdown_path = write_comparison(tmp_path)

    assert markdown_path == tmp_path / "comparison.md"
    assert (tmp_path / "rollout_comparison.png").stat().st_size > 0
    rows = read_csv(tmp_path / "comparison.csv")
    assert [row["job"] for row in rows] == ["0_sfno", "1_fno", "2_fno", "3_sfno"]
    assert [row["status"] for row in rows] == ["completed", "completed", "completed", "failed"]
    first = rows[0]
    assert float(first["rel_l2_1step_vorticity"]) == 0.01
    assert float(first["rel_l2_mean_20h"]) == 0.2
    assert float(first["persistence_5h"]) == 0.25
    assert first["first_lead_worse_than_persistence_h"] == "never"
    assert rows[2]["first_lead_worse_than_persistence_h"] == "1"
    assert rows[3]["error"] == "CUDA out of memory"

    markdown = markdown_path.read_text()
    assert "4 jobs: 3 completed, 1 failed" in markdown
    assert (
        "- **+1 h**: `0_sfno` has the lowest mean rel_l2, 0.01 (next best `1_fno` 0.04; persistence 0.05)." in markdown
    )
    assert "- **+20 h**: `0_sfno` has the lowest mean rel_l2, 0.2" in markdown
    assert "`0_sfno` beats persistence at +20 h (0.2 vs 1)." in markdown
    assert "`2_fno` does not beat persistence at +20 h (1.6 vs 1); worse than persistence from +1 h." in markdown
    assert "- `3_sfno`: CUDA out of memory" in markdown
    assert "| 3_sfno |" in markdown


def test_write_comparison_leaves_out_leads_beyond_the_rollout(tmp_path):
    make_job(tmp_path, "0_sfno", scale=0.01)
    metrics_path = tmp_path / "0_sfno" / "test_metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["lead_hours"] = LEADS[:8]
    metrics["rel_l2"] = {
        kind: {name: per_lead[:8] for name, per_lead in by_name.items()} for kind, by_name in metrics["rel_l2"].items()
    }
    metrics_path.write_text(json.dumps(metrics))

    write_comparison(tmp_path)

    columns = read_csv(tmp_path / "comparison.csv")[0].keys()
    assert {"rel_l2_mean_1h", "rel_l2_mean_5h"} <= columns
    assert "rel_l2_mean_10h" not in columns


def test_write_comparison_without_completed_jobs(tmp_path):
    make_job(tmp_path, "0_sfno", error="NaN loss")

    markdown = write_comparison(tmp_path).read_text()

    assert "No completed jobs: nothing to compare." in markdown
    assert "- `0_sfno`: NaN loss" in markdown
    assert not (tmp_path / "rollout_comparison.png").exists()
    assert [row["status"] for row in read_csv(tmp_path / "comparison.csv")] == ["failed"]


def test_callback_writes_report_and_never_raises(tmp_path, caplog):
    make_job(tmp_path, "0_sfno", scale=0.01)
    callback = ComparisonReport()

    with caplog.at_level(logging.INFO, logger="evaluation.report"):
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}}))

    assert (tmp_path / "comparison.md").is_file()
    assert "Sweep comparison written to" in caplog.text
    assert "Could not write the sweep comparison" in caplog.text
