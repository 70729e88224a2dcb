"""A run survives being killed (resume=<run folder>), stops on a non-finite loss, and a sweep survives a failed job."""

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler

from data.datamodule import EpochSampler, InMemoryTrajectories, ResumableLoader
from runs.checks import ConfigError, check_config
from runs.lightning_callbacks import RNGState
from runs.resume import quote_folder_arguments
from tests.conftest import REPO, RESUMABLE, TINY, compose_hydra_config, run_train

STEPS_PER_EPOCH = 8
# Adam moves every weight by about the learning rate: the second step's loss overflows.
DIVERGING = ["training.gradient_clip_val=null", "checkpoint_every_n_steps=1"]


def only_run(log_dir: Path) -> Path:
    (run,) = log_dir.glob("*/*")
    return run


def checkpoint(run: Path) -> dict:
    return torch.load(run / "ckpt" / "last.ckpt", weights_only=True)


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def assert_close(a: object, b: object) -> None:
    """Equal numbers (to 1e-6, relative) in equal nested structures."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_close(x, y)
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (a, b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_root) -> Path:
    """The reference: the resumable run, left alone to the end."""
    tmp_path = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
            patch.setenv(variable, str(tmp_path / "wandb-home"))
        run_train([*RESUMABLE, f"paths.data_root={data_root}", f"paths.log_dir={tmp_path / 'outputs'}"], tmp_path)
    return only_run(tmp_path / "outputs")


def test_a_killed_run_resumes_to_the_weights_and_metrics_of_an_uninterrupted_one(tmp_path, data_root, whole_run):
    log_dir = tmp_path / "outputs"
    args = [*RESUMABLE, f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"]
    errors = tmp_path / "killed.err"
    with errors.open("w") as stderr:  # a file, not a pipe: a full pipe would block the run
        process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=tmp_path, stderr=stderr)
        while not list(log_dir.glob("*/*/ckpt/last.ckpt")):
            assert process.poll() is None, errors.read_text()[-3000:]
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
    run = only_run(log_dir)
    killed_at = checkpoint(run)["global_step"]
    assert killed_at % STEPS_PER_EPOCH, f"killed at an epoch end (step {killed_at}), not within an epoch"
    hydra_files = {path.name: path.read_text() for path in (run / ".hydra").iterdir()}

    result = run_train([f"resume={run}"], cwd=tmp_path)

    assert f"resuming {run} at epoch 0, step {killed_at}" in result.stdout + result.stderr
    assert list(log_dir.glob("*/*")) == [run], "a resume goes on in the run's own folder"
    assert {path.name: path.read_text() for path in (run / ".hydra").iterdir()} == hydra_files
    resumed, whole = checkpoint(run)["state_dict"], checkpoint(whole_run)["state_dict"]
    assert resumed.keys() == whole.keys()
    for name, value in whole.items():
        assert torch.allclose(resumed[name], value, rtol=0, atol=1e-6), name
    assert_close(json.loads((run / "test_metrics.json").read_text())["rel_l2"], _test_rel_l2(whole_run))
    assert_close(_numbers(metrics_rows(run)), _numbers(metrics_rows(whole_run)))
    wandb_id = (run / "wandb_id.txt").read_text().strip()
    assert [path.name.rsplit("-", 1)[-1] for path in (run / "wandb").glob("offline-run-*")] == [wandb_id] * 2
    log = (run / "train.log").read_text()
    assert log.count("run folder") == 2, "the resume adds to the run's train.log"


def _test_rel_l2(run: Path) -> dict:
    return json.loads((run / "test_metrics.json").read_text())["rel_l2"]


def _numbers(rows: list[dict[str, str]]) -> list[dict[str, float | str]]:
    return [{key: float(value) if value else "" for key, value in row.items()} for row in rows]


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, whole_run):
    metrics = (whole_run / "test_metrics.json").read_text()
    result = run_train([f"resume={whole_run}"], cwd=tmp_path)
    assert "nothing to train: the run finished its 2 epochs already" in result.stdout + result.stderr
    assert (whole_run / "test_metrics.json").read_text() == metrics
    assert list(whole_run.parent.parent.glob("*/*")) == [whole_run]
    assert not list(tmp_path.iterdir())


def test_resume_refuses_overrides_that_change_the_run(tmp_path, whole_run):
    before = {path: path.stat().st_mtime_ns for path in whole_run.rglob("*")}
    result = run_train(
        [f"resume={whole_run}", "model=fno", "training.lr=0.1", "training.max_epochs=3"], tmp_path, False
    )
    assert result.returncode != 0
    assert "drop model=fno training.lr=0.1, or start a new run" in result.stderr
    assert "Traceback" not in result.stderr
    assert {path: path.stat().st_mtime_ns for path in whole_run.rglob("*")} == before


def test_resume_needs_a_run_folder_with_a_checkpoint_and_no_sweep(tmp_path):
    with pytest.raises(ConfigError, match="is not a run folder"):
        check_config(compose_hydra_config([f"resume={tmp_path}"]))
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}")
    with pytest.raises(ConfigError, match=r"has no ckpt/last.ckpt to continue from"):
        check_config(compose_hydra_config([f"resume={tmp_path}", "training.max_epochs=5"]))
    result = run_train(["-m", f"resume={tmp_path}"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "resume continues one run: run it without -m" in result.stderr


def test_a_resume_runs_in_the_run_folder_and_keeps_its_hydra_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hydra = compose_hydra_config(["resume=outputs/day/run"]).hydra
    assert hydra.run.dir == "outputs/day/run"
    assert hydra.output_subdir is None
    assert hydra.job_logging.handlers.file.mode == "a"
    fresh = compose_hydra_config([]).hydra
    # A fresh run's folder is new: appending to its train.log matters only when a requeued job starts again in it.
    assert fresh.output_subdir == ".hydra" and fresh.job_logging.handlers.file.mode == "a"
    assert compose_hydra_config(["debug=True"]).hydra.job_logging.handlers.file.mode == "w", "debug/ is reused"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("key", ["resume", "init_from"])
def test_run_folders_pass_as_resume_and_init_from_values_unquoted(key):
    folder = "outputs/2026-01-01/2026-01-01_10-00-00_fno32x64_model.modes=8,8"
    assert quote_folder_arguments(["train.py", f"{key}={folder}", "training.max_epochs=3"]) == [
        "train.py",
        f"{key}='{folder}'",
        "training.max_epochs=3",
    ]
    assert quote_folder_arguments(["resume=outputs/plain", f"resume='{folder}'"]) == [
        "resume=outputs/plain",
        f"resume='{folder}'",
    ]


def test_a_resumed_loader_goes_on_at_the_next_unseen_batch():
    """The resumed epoch goes on with the windows (trajectory and start) the uninterrupted one would have seen."""
    trajectories = InMemoryTrajectories(torch.arange(24).reshape(4, 6), length=3)  # 4 trajectories of 6 "states"

    def loader() -> ResumableLoader:
        sampler = EpochSampler(12, shuffle=True, seed=3, trajectories=4, max_start=3)
        batches = BatchSampler(sampler, 2, drop_last=True)
        return ResumableLoader(trajectories, batch_sampler=batches, collate_fn=lambda batch: batch)

    whole = loader()
    whole.batch_sampler.sampler.set_epoch(4)
    order = [batch.tolist() for batch in whole]
    interrupted = loader()
    interrupted.batch_sampler.sampler.set_epoch(4)
    iterator = iter(interrupted)
    seen = [next(iterator).tolist() for _ in range(2)]
    state = interrupted.state_dict()
    assert state == {"epoch": 4, "batches": 2}

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.batch_sampler.sampler.set_epoch(4)
    assert len(resumed) == len(order), "Lightning counts the resumed epoch's batches from where it stopped"
    assert seen + [batch.tolist() for batch in resumed] == order
    assert [batch.tolist() for batch in resumed] == order, "the next epoch is whole again"
    other_epoch = loader()
    other_epoch.load_state_dict(state)
    other_epoch.batch_sampler.sampler.set_epoch(5)
    assert len(list(other_epoch)) == len(order), "a state of another epoch is ignored"


def test_rng_state_travels_with_the_checkpoint():
    state = RNGState().state_dict()
    expected = torch.rand(3)
    torch.rand(10)
    RNGState().load_state_dict(state)
    assert torch.equal(torch.rand(3), expected)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, data_root):
    log_dir = tmp_path / "outputs"
    args = [*TINY, *DIVERGING, "training.lr=1e30", f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"]
    result = run_train(args, cwd=tmp_path, check=False)
    assert result.returncode != 0
    run = only_run(log_dir)
    message = (run / "error.txt").read_text().splitlines()[0]
    assert message.startswith("NonFiniteLossError: Training stopped: non-finite loss")
    assert "at epoch 0, step 2 (batch 1 of the epoch)" in message
    assert message in result.stderr
    assert "Traceback" in (run / "error.txt").read_text()
    good = checkpoint(run)
    assert good["global_step"] == 1
    assert all(torch.isfinite(value).all() for value in good["state_dict"].values())
    assert not (run / "test_metrics.json").exists()


def test_a_sweep_runs_past_a_failed_job_and_exits_non_zero_listing_it(tmp_path, data_root):
    log_dir = tmp_path / "outputs"
    args = ["-m", "training.lr=1e30,1e-3", *TINY, *DIVERGING, f"paths.data_root={data_root}"]
    result = run_train([*args, f"paths.log_dir={log_dir}"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    sweep = only_run(log_dir)
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir())
    assert [job.name[0] for job in jobs] == ["0", "1"]
    assert (jobs[1] / "test_metrics.json").is_file(), "the job after the failed one ran to its end"
    message = (jobs[0] / "error.txt").read_text().splitlines()[0]
    assert "non-finite loss" in message
    assert f"1 of 2 sweep jobs failed (see error.txt in each):\n  - {jobs[0].name}: {message}" in result.stderr
    comparison = (sweep / "comparison.md").read_text()
    assert "2 jobs: 1 completed, 1 failed" in comparison
    assert f"- `{jobs[0].name}`: {message}" in comparison
