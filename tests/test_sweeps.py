"""Sweeps through other launchers and sweepers: parallel local jobs (submitit_local), a requeued job that goes on
from its checkpoint, an Optuna search with a failing trial, and the SLURM preset's submission script."""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import submitit
import torch
import yaml
from hydra.utils import instantiate

from tests.conftest import REPO, RESUMABLE, TINY, compose_hydra_config, run_train

DIVERGING = ["training.gradient_clip_val=null", "checkpoint_every_n_steps=1"]


def job_folders(sweep: Path) -> list[Path]:
    return sorted(path for path in sweep.iterdir() if (path / ".hydra").is_dir())


def log_times(run: Path) -> tuple[datetime, datetime]:
    """When the job logged its first and its last line."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (run / "train.log").read_text(), re.MULTILINE)
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in (stamps[0], stamps[-1]))
    return first, last


def test_submitit_local_runs_sweep_jobs_in_parallel_processes(tmp_path, data_root):
    """The README's `-m hydra/launcher=submitit_local model=sfno,fno`, with tiny settings."""
    log_dir = tmp_path / "outputs"
    args = ["-m", "hydra/launcher=submitit_local", "model=sfno,fno", *TINY, f"paths.data_root={data_root}"]
    result = run_train([*args, f"paths.log_dir={log_dir}"], cwd=tmp_path)
    (sweep,) = log_dir.glob("*/*")
    jobs = job_folders(sweep)
    assert [job.name[:2] for job in jobs] == ["0_", "1_"]
    for job in jobs:
        assert (job / "test_metrics.json").is_file() and (job / "ckpt" / "last.ckpt").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        assert (job / "train.log").read_text().count("run folder: ") == 1
    assert len([path for path in (sweep / ".submitit").iterdir() if list(path.glob("*_result.pkl"))]) == 2
    (start_0, end_0), (start_1, end_1) = (log_times(job) for job in jobs)
    assert start_1 < end_0 and start_0 < end_1, "the two jobs ran at the same time"
    assert "2 jobs: 2 completed, 0 failed" in (sweep / "comparison.md").read_text()
    tests = (sweep / "comparison_tests.csv").read_text().splitlines()
    assert tests[0].startswith("lead_h,config,other,difference,ci_low,ci_high,p,p_holm")
    assert any(",model=sfno,model=fno," in row or ",model=fno,model=sfno," in row for row in tests[1:]), "the two jobs"
    assert "Sweep comparison written" in result.stdout


def test_a_requeued_job_goes_on_from_its_checkpoint_with_its_wandb_run(tmp_path, data_root):
    """What SLURM and submitit do at a time-out or pre-emption (SIGUSR2, requeue), with submitit's local executor:
    the job starts again in its own folder, finds ckpt/last.ckpt and continues it."""
    log_dir = tmp_path / "outputs"
    args = [
        "-m",
        "hydra/launcher=submitit_local",
        *RESUMABLE,
        f"paths.data_root={data_root}",
        f"paths.log_dir={log_dir}",
    ]
    output = tmp_path / "sweep.out"
    with output.open("w") as file:  # a file, not a pipe: a full pipe would block the sweep
        sweep_process = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args], cwd=tmp_path, stdout=file, stderr=subprocess.STDOUT
        )
        while not list(log_dir.glob("*/*/*/ckpt/last.ckpt")):
            assert sweep_process.poll() is None, output.read_text()[-3000:]
            time.sleep(0.005)
        (job_process,) = submitit_job_processes(log_dir)
        os.kill(job_process, signal.SIGUSR2)  # as SLURM signals signal_delay_s before the end, or on pre-emption
        assert sweep_process.wait(timeout=300) == 0, output.read_text()[-3000:]
    (sweep,) = log_dir.glob("*/*")
    (job,) = job_folders(sweep)
    submitit_log = "".join(path.read_text() for path in (sweep / ".submitit").glob("*/*_log.out"))
    assert "Requeued job" in submitit_log
    log = (job / "train.log").read_text()
    assert log.count("run folder: ") == 2, "the requeued job adds to the job's train.log"
    match = re.search(r"requeued job found its checkpoint: resuming (.+) at epoch 0, step (\d+), up to epoch 2", log)
    assert match and match.group(1) == str(job) and int(match.group(2)) > 0
    assert torch.load(job / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 16, "2 epochs of 8 steps"
    assert (job / "test_metrics.json").is_file()
    wandb_id = (job / "wandb_id.txt").read_text().strip()
    assert [path.name.rsplit("-", 1)[-1] for path in (job / "wandb").glob("offline-run-*")] == [wandb_id] * 2


def submitit_job_processes(log_dir: Path) -> list[int]:
    """The processes that run submitit jobs of sweeps under ``log_dir``: they hold submitit's signal handlers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or one that has just ended
            continue
        if b"submitit.core._submit" in command and any(str(log_dir).encode() in part for part in command):
            found.append(int(entry.name))
    return found


def test_an_optuna_search_reports_its_best_trial_and_records_a_diverging_one_as_failed(tmp_path, data_root):
    log_dir = tmp_path / "outputs"
    # Two trials of a learning rate that trains and one that diverges; width and batch size fixed by the overrides.
    args = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "training.lr=choice(0.001,1e30)", *TINY]
    args.append("logger=csv")  # W&B in a sweep's jobs: test_run_folders.py's multirun
    result = run_train([*args, *DIVERGING, f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"], tmp_path)
    (sweep,) = log_dir.glob("*/*")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"training.lr": 0.001}
    jobs = job_folders(sweep)
    completed = [job for job in jobs if (job / "test_metrics.json").is_file()]
    failed = [job for job in jobs if (job / "error.txt").is_file()]
    assert len(jobs) == 2 and len(completed) == 1 and len(failed) == 1
    assert "training.lr=0.001" in yaml.safe_load((completed[0] / ".hydra" / "overrides.yaml").read_text())
    assert "hparams_search" not in completed[0].name, "the search is the sweep's, not part of each job's name"
    with (completed[0] / "metrics.csv").open(newline="") as file:
        val_errors = [float(row["val/rollout_rel_l2"]) for row in csv.DictReader(file) if row["val/rollout_rel_l2"]]
    assert results["best_value"] == pytest.approx(val_errors[-1]), "the search minimises what train.py returns"
    assert "Failed experiment: Training stopped: non-finite loss" in result.stdout
    assert "1 of 2 trials failed" in result.stdout
    assert "2 jobs: 1 completed, 1 failed" in (sweep / "comparison.md").read_text()


def test_the_optuna_search_space_is_learning_rate_width_and_batch_size():
    sweeper = compose_hydra_config(["hparams_search=optuna"]).hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert set(sweeper.params) == {"training.lr", "model.width", "batch_size"}
    assert sweeper.max_failure_rate == 1.0


def test_the_slurm_preset_asks_for_what_the_run_needs(tmp_path, monkeypatch):
    """The sbatch script that hydra-submitit-launcher would submit for `-m cluster=slurm trainer.devices=4`."""
    fake_srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor wants srun on the PATH
    fake_srun.parent.mkdir()
    fake_srun.write_text("#!/bin/sh\nexit 1\n")
    fake_srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_srun.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USER", "someone")
    monkeypatch.delenv("SWE_DATA_ROOT")  # the suite's fixture points it at a temporary folder
    cfg = compose_hydra_config(["cluster=slurm", "trainer.devices=4", f"paths.log_dir={tmp_path / 'outputs'}"])
    assert cfg.paths.data_root == "/cluster/scratch/someone/swe_cache", "paths=cluster comes with the preset"
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    submitted = {}

    def map_array(executor, function, *arguments):
        submitted["executor"] = executor._executor
        submitted["script"] = executor._executor._make_submission_file_text("python -m submitit.core._submit", "0")
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    launcher.launch([["training.lr=0.001"]], initial_job_idx=0)
    script = submitted["script"]
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=1",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",  # one DDP process per GPU, started by srun
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",  # submitit's requeue signal, before the time limit
        "#SBATCH --open-mode=append",
    ):
        assert line in script.splitlines(), f"{line} not in\n{script}"
    assert f"--output={tmp_path / 'outputs'}" in script, "submitit's logs go into the sweep folder"
    assert submitted["executor"].max_num_timeout == 20


def test_the_slurm_preset_prints_without_creating_anything(tmp_path):
    result = run_train(["cluster=slurm", "--cfg", "hydra", "-p", "hydra.launcher"], cwd=tmp_path)
    launcher = yaml.safe_load(result.stdout.split("\n", 1)[1])
    assert launcher["gpus_per_node"] == launcher["tasks_per_node"] == "${trainer.devices}"
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert not list(tmp_path.iterdir())
