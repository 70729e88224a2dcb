"""The sweep report's physics and its sources: synthetic jobs written with the run report's own writers
(test_errors.npz, test_physics.npz, test_metrics.json), read from the jobs, from their evaluations or from several
sweep folders; a configuration with a known larger energy drift and polar error is found significantly worse."""

import csv
import json
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from evaluation.run_report import write_test_files
from evaluation.sweep.report import main, write_comparison
from runs.folder import EVAL_OVERRIDES, evaluation_folder

CHANNELS = ["geopotential", "vorticity", "divergence"]
FORECASTS = ["model", "persistence", "climatology", "linear"]
TRAJECTORIES, BANDS, DEGREES = 8, 6, 6
EVALUATION = ["eval.rollout_steps=50"]


def results(steps, scale, seed, energy_gain=0.0, polar_error=0.0, blow_up=None):
    """Test results as the module leaves them, on one test set (the truth and the baselines depend only on the
    trajectory): the model's error grows as ``scale`` * lead, its energy drifts by ``energy_gain`` per hour beyond
    the truth's, and its error in the polar band (75-90) is ``polar_error`` above the others'. ``blow_up``: the
    hour from which the model's rollout of trajectory 0 is 1e30 times too large, invariants and band energy alike."""
    test_set, own = np.random.default_rng(0), np.random.default_rng(seed)
    leads = np.arange(1, steps + 1)
    difficulty = test_set.uniform(0.5, 1.5, (TRAJECTORIES, 1, 1))
    baselines = [0.05 * leads + 0 * difficulty, np.ones(steps) + 0 * difficulty, 0.002 * leads * difficulty]
    model = scale * leads * difficulty * own.uniform(0.9, 1.1, (TRAJECTORIES, 1, steps))
    rel_l2 = np.stack([np.repeat(values, 3, axis=1) for values in [model, *baselines]])  # (forecast, traj, ch, lead)
    hours = np.arange(steps + 1)
    truth = test_set.uniform(1, 2, (TRAJECTORIES, 3, 1)) * (1 - 1e-3 * hours)  # (trajectory, invariant, hour)
    noise = 1e-5 * own.standard_normal((TRAJECTORIES, 3, steps + 1))
    forecast = truth * (1 + noise * hours / steps)
    forecast[:, 1] *= 1 + energy_gain * hours  # energy
    invariants = np.stack([truth, forecast, *[np.repeat(truth[..., :1], steps + 1, axis=-1)] * 3])
    bands = np.repeat(rel_l2[:, :, :, None, :], BANDS, axis=3) * own.uniform(0.95, 1.05, (1, TRAJECTORIES, 1, BANDS, 1))
    bands[0, :, :, 0] += polar_error * leads
    fraction = np.full((5, TRAJECTORIES, 3, steps), 1e-13)
    fraction[1] = 1e-4 * (1 + energy_gain * 1e3) * own.uniform(0.5, 1.5, (TRAJECTORIES, 3, steps))
    if blow_up is not None:
        invariants[1, 0, :, blow_up:] *= 1e30
        fraction[1, 0, :, blow_up - 1 :] = 0.9
    physics = {
        "invariants": invariants,
        "moments": test_set.random((5, TRAJECTORIES, 3, steps, 2)),
        "energy_fraction_above": fraction,
        "latitude_band_rel_l2": bands,
        "authors_pooled_rel_l2": rel_l2.mean(axis=2) / 100,
        "power_spectrum": np.ones((5, steps, 3, DEGREES)),
    }
    return {
        "forecasts": FORECASTS,
        "sources": ["truth", *FORECASTS],
        "lead_hours": leads.tolist(),
        "errors": {"rel_l2": rel_l2, "rmse": 100 * rel_l2},
        "physics": physics,
        "band_limit": 4,
        "latitude_bands": [(90.0 - 15 * (band + 1), 90.0 - 15 * band) for band in range(BANDS)],
        "power_spectrum": {
            "lead_hours": [1],
            "target": np.ones((1, 3, DEGREES)),
            "prediction": np.ones((1, 3, DEGREES)),
        },
    }


def make_job(sweep_dir, number, overrides, steps=20, scale=0.01, seed=0, **physics):
    """A trained job's folder as Hydra names it, with the test files the run report writes."""
    job_dir = sweep_dir / "_".join([str(number), "sfno32x64", *overrides])
    (job_dir / ".hydra").mkdir(parents=True)
    meta = {
        "model": dict(override.split("=") for override in overrides).get("model", "sfno"),
        "data": "32x64",
        "parameters": 1000,
        "train_time_s": 12.0,
        "overrides": list(overrides),
    }
    write_test_files(results(steps, scale, seed, **physics), CHANNELS, meta, job_dir)
    return job_dir


def evaluate(job_dir, overrides=EVALUATION, steps=50, scale=0.02, seed=0, checkpoint="best-epoch=3.ckpt", **physics):
    """An evaluate.py folder of the job: its overrides, and test files of ``steps`` hours."""
    folder = evaluation_folder(job_dir, overrides)
    (folder / EVAL_OVERRIDES).write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    saved = json.loads((job_dir / "test_metrics.json").read_text())
    meta = {key: saved[key] for key in ("model", "data", "parameters", "overrides")}
    meta["checkpoint"] = str(job_dir / "ckpt" / checkpoint)
    write_test_files(results(steps, scale, seed, **physics), CHANNELS, meta, folder)
    return folder


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_configuration_with_a_larger_energy_drift_and_polar_error_is_significantly_worse(tmp_path):
    for seed in range(3):
        make_job(tmp_path, seed, ["model=sfno", f"seed={seed}"], scale=0.010, seed=seed)
        make_job(
            tmp_path, 3 + seed, ["model=fno", f"seed={seed}"], scale=0.011, seed=10 + seed, energy_gain=1e-3,
            polar_error=0.05,
        )  # fmt: skip

    markdown = write_comparison(tmp_path).read_text()

    rows = read_csv(tmp_path / "comparison_physics_tests.csv")
    assert list(rows[0])[:4] == ["quantity", "part", "lead_h", "config"]
    energy = next(row for row in rows if row["quantity"] == "drift_error" and row["part"] == "energy")
    assert (energy["lead_h"], energy["config"], energy["other"], energy["over"]) == (
        "20",
        "model=sfno",
        "model=fno",
        "seeds",
    )
    assert float(energy["p_holm"]) <= 0.05 and float(energy["difference"]) < 0
    # Welch on the per-seed means of |model drift - truth drift| at 20 h, from the files alone.
    per_seed = {}
    for model in ("sfno", "fno"):
        per_seed[model] = []
        for job_dir in sorted(tmp_path.glob(f"*model={model}*")):
            with np.load(job_dir / "test_physics.npz") as physics:
                energy_values = physics["invariants"][:, :, 1]  # (source, trajectory, hour)
            drift = (energy_values - energy_values[..., :1]) / np.abs(energy_values[..., :1])
            per_seed[model].append(np.abs(drift[1, :, 20] - drift[0, :, 20]).mean())
    assert float(energy["p"]) == pytest.approx(stats.ttest_ind(*per_seed.values(), equal_var=False).pvalue, rel=1e-9)
    mass = next(row for row in rows if row["quantity"] == "drift_error" and row["part"] == "mass")
    assert float(mass["p_holm"]) > 0.05, "the same mass drift: no difference"
    polar = [row for row in rows if row["quantity"] == "latitude_band_rel_l2" and row["part"] == "75-90"]
    assert [row["lead_h"] for row in polar] == ["1", "5", "10", "20"]
    assert all(float(row["p_holm"]) <= 0.05 and row["config"] == "model=sfno" for row in polar[1:])
    bands = [row for row in rows if row["quantity"] == "latitude_band_rel_l2"]
    assert len(bands) == 4 * 6, "every lead and band; Holm over all of them"
    excess = [row for row in rows if row["quantity"] == "energy_fraction_above_excess"]
    assert all(row["config"] == "model=sfno" and float(row["p_holm"]) <= 0.05 for row in excess)
    assert "### Invariant drift at +20 h" in markdown and "### Stability to +20 h" in markdown
    assert "| model=sfno | 3 | 1 ± 0 | 0 / 24 | never |" in markdown.split("### Stability")[1]
    assert "| +20 h | 75-90 | model=sfno | model=fno (p Holm" in markdown
    assert "![invariant drift per configuration](invariant_drift_comparison.png)" in markdown
    assert (tmp_path / "latitude_bands_comparison.png").stat().st_size > 0
    rel_l2_columns = read_csv(tmp_path / "comparison_tests.csv")[0]
    assert list(rel_l2_columns)[:8] == ["lead_h", "config", "other", "difference", "ci_low", "ci_high", "p", "p_holm"]


def test_with_one_seed_each_the_physics_is_paired_over_trajectories(tmp_path):
    make_job(tmp_path, 0, ["model=sfno"], seed=1)
    make_job(tmp_path, 1, ["model=fno"], seed=2, polar_error=0.05)

    write_comparison(tmp_path)

    rows = read_csv(tmp_path / "comparison_physics_tests.csv")
    polar = next(row for row in rows if row["part"] == "75-90" and row["lead_h"] == "20")
    assert polar["over"] == "test trajectories, blind to seed variance" and polar["n"] == str(TRAJECTORIES)
    per_trajectory = []
    for job_dir in sorted(tmp_path.glob("*_sfno32x64_*")):
        with np.load(job_dir / "test_physics.npz") as physics:
            per_trajectory.append(physics["latitude_band_rel_l2"][0, :, :, 0, 19].mean(axis=1))
    assert float(polar["p"]) == pytest.approx(stats.ttest_rel(*per_trajectory).pvalue, rel=1e-9)


def test_a_rollout_that_blew_up_counts_in_stability_and_not_in_the_drift_and_band_energy_of_the_others(tmp_path):
    make_job(tmp_path, 0, ["model=sfno"], seed=1, blow_up=12)
    make_job(tmp_path, 1, ["model=fno"], seed=2)

    markdown = write_comparison(tmp_path).read_text()

    stability = markdown.split("### Stability")[1]
    assert "| model=sfno | 1 | 0.875 ± 0.12 | 1 / 8 | +12 h |" in stability
    drift = markdown.split("### Invariant drift")[1].split("###")[0]
    sfno_row = next(line for line in drift.splitlines() if line.startswith("| model=sfno"))
    energy = float(sfno_row.split("|")[5].split("±")[0])
    assert abs(energy) < 0.05, f"the drift of the seven stable rollouts, not the one at 1e30: {sfno_row}"
    rows = read_csv(tmp_path / "comparison_physics_tests.csv")
    late = [row for row in rows if row["quantity"] == "drift_error" and row["lead_h"] == "20"]
    assert late and all(row["n"] == str(TRAJECTORIES - 1) for row in late), "pairs of the stable rollouts only"
    early = [row for row in rows if row["quantity"] == "energy_fraction_above_excess" and row["lead_h"] == "10"]
    assert early and all(row["n"] == str(TRAJECTORIES) for row in early), "before the blow-up every rollout counts"
    record = json.loads((tmp_path / "0_sfno32x64_model=sfno" / "test_metrics.json").read_text())
    assert record["invariants"]["stable_rollouts"]["model"][11:13] == [TRAJECTORIES, TRAJECTORIES - 1]
    assert record["invariants"]["stable_rollouts"]["truth"][-1] == TRAJECTORIES
    assert abs(record["invariants"]["relative_drift"]["model"]["energy"][-1]) < 0.05
    assert record["spectral_ratio"]["energy_fraction_above"]["model"]["mean"]["forecast"][-1] < 1e-3


def test_a_sweep_read_through_its_evaluations_uses_their_numbers_and_shows_the_missing(tmp_path):
    sfno = make_job(tmp_path, 0, ["model=sfno", "seed=0"], scale=0.01)
    fno = make_job(tmp_path, 1, ["model=fno", "seed=0"], scale=0.03)
    make_job(tmp_path, 2, ["model=fno", "seed=1"], scale=0.03)  # never evaluated
    evaluate(sfno, scale=0.5)  # older
    evaluate(sfno, scale=0.02)  # the newest: the one compared
    evaluate(sfno, scale=0.9, checkpoint="last.ckpt")  # another checkpoint: not compared
    evaluate(sfno, overrides=[*EVALUATION, "batch_size=4"], scale=0.7)  # other overrides
    evaluate(fno, scale=0.04, seed=3)
    write_comparison(tmp_path)
    own_report = (tmp_path / "comparison.md").read_text()

    markdown = write_comparison(tmp_path, evaluation=EVALUATION).read_text()

    folder = tmp_path / "eval_eval.rollout_steps=50"
    assert (folder / "comparison.md").read_text() == markdown
    assert (tmp_path / "comparison.md").read_text() == own_report, "the sweep's own report is untouched"
    rows = {row["label"]: row for row in read_csv(folder / "comparison.csv")}
    assert float(rows["#0 model=sfno"]["rel_l2_mean_20h"]) == pytest.approx(0.02 * 20, rel=0.1)
    assert rows["#0 model=sfno"]["train_time_s"] == "12.0", "the training's time, kept"
    assert rows["#2"]["status"] == "missing"
    assert "| +20 h | +50 h |" in markdown and "+50 h" not in own_report
    assert float(rows["#0 model=sfno"]["rel_l2_mean_50h"]) == pytest.approx(0.02 * 50, rel=0.1)
    assert "3 jobs: 2 completed, 0 failed, 1 without the evaluation; 2 configurations." in markdown
    assert "### Invariant drift at +50 h" in markdown
    assert "Each job's newest evaluation with overrides `eval.rollout_steps=50`." in markdown
    missing = markdown.split("## Jobs without the evaluation")[1]
    assert "`2_sfno32x64_model=fno_seed=1`: no finished evaluation: python evaluate.py" in missing
    assert missing.split("\n")[2].endswith("2_sfno32x64_model=fno_seed=1 eval.rollout_steps=50")


def test_several_sweep_folders_combine_into_one_report(tmp_path, monkeypatch):
    first, second = tmp_path / "sfno_multirun", tmp_path / "fno_multirun"
    for seed in range(2):
        make_job(first, seed, ["model=sfno", f"seed={seed}"], seed=seed)
    make_job(second, 0, ["model=sfno", "seed=2"], seed=2)  # the interrupted multirun's last seed, run again
    for seed in range(3):
        make_job(second, 1 + seed, ["model=fno", f"seed={seed}"], scale=0.02, seed=5 + seed)
    with pytest.raises(ValueError, match="--into"):
        write_comparison([first, second])
    monkeypatch.setattr(sys, "argv", ["report", str(first), str(second), "--into", str(tmp_path / "study")])

    main()

    markdown = (tmp_path / "study" / "comparison.md").read_text()
    assert "6 jobs: 6 completed, 0 failed; 2 configurations." in markdown
    assert f"s1: `{first}`" in markdown and f"s2: `{second}`" in markdown
    seeds = markdown.split("## Across seeds")[1].split("##")[0]
    assert "| model=sfno | sfno | 3 |" in seeds and "| model=fno | sfno | 3 |" not in seeds
    labels = [row["label"] for row in read_csv(tmp_path / "study" / "comparison.csv")][:5]
    assert labels == ["s1#0 model=sfno seed=0", "s1#1 model=sfno seed=1", "s2#0 model=sfno seed=2", *labels[3:]]
    assert not (first / "comparison.md").exists() and not (second / "comparison.md").exists()


def test_the_report_refuses_to_write_evaluations_over_the_sweeps_own_report(tmp_path, monkeypatch, capsys):
    make_job(tmp_path, 0, ["model=sfno"])
    with pytest.raises(ValueError, match="over the sweep's own report"):
        write_comparison(tmp_path, into=tmp_path, evaluation=EVALUATION)
    monkeypatch.setattr(sys, "argv", ["report", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit):
        main()
    assert "no sweep folder" in capsys.readouterr().err
    assert not (tmp_path / "comparison.md").exists()
