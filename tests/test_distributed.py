"""DDP with one run folder (two CPU processes, gloo), the effective batch size across devices, and SLURM without
Lightning's own requeue."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Trainer

from evaluation.test_errors import load_test_errors
from evaluation.test_physics import load_test_physics
from models.metrics import area_weights, relative_l2
from runs.checks import ConfigError, check_config
from runs.distributed import RunFolderDDPStrategy, rank_command, run_folder_strategy, trainer_settings
from sphere.diagnostics import latitude_band_relative_l2
from tests.conftest import REPO, TINY_DATA, compose_config, compose_hydra_config, run_train
from tests.test_run_folders import assert_physics_summaries_are_the_means_of_test_physics

# Two processes of two-sample batches: 8 examples are 2 batches per rank, one optimizer step each (the effective
# batch, unset as in the README's DDP line, is 2 x 2 devices).
DDP = [
    *TINY_DATA,
    "batch_size=2",
    "training.max_epochs=1",
    "model.width=8",
    "model.layers=1",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.strategy=ddp",
]


def wandb_runs(run: Path) -> list[Path]:
    return sorted((run / "wandb").glob("offline-run-*"))


def assert_one_complete_run(run: Path, test_examples: int = 2) -> None:
    """Everything of a two-process run, once: rank 0's log, checkpoints, W&B run and report."""
    assert (run / ".hydra" / "config.yaml").is_file()
    assert [path.name for path in run.glob("*.log")] == ["train.log"], "no log file of another rank"
    log = (run / "train.log").read_text()
    assert log.count("run folder: ") == 1, "rank 1's messages stay out of train.log"
    assert "[rank 1]" not in log
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log
    assert len(wandb_runs(run)) == 1
    assert wandb_runs(run)[0].name.endswith((run / "wandb_id.txt").read_text().strip())
    assert sorted(path.name for path in (run / "ckpt").iterdir()) == ["best-epoch000-step2.ckpt", "last.ckpt"]
    assert (run / "test_metrics.json").is_file()
    # Each rank tested its share of the test trajectories: the report has them all.
    assert json.loads((run / "test_metrics.json").read_text())["num_trajectories"] == test_examples
    checkpoint = torch.load(run / "ckpt" / "last.ckpt", weights_only=True)
    # Each rank took 2 of the 8 training examples' 4 batches: one optimizer step per batch (no accumulation).
    assert checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 2
    assert checkpoint["global_step"] == 2


def test_a_ddp_run_has_one_folder_one_log_one_wandb_run(tmp_path, data_root):
    log_dir = tmp_path / "outputs"
    # 3 test trajectories on 2 ranks: rank 0 tests the first and the third, rank 1 the second.
    overrides = [*DDP, "data.num_test_examples=3", "eval.plots=True", f"paths.data_root={data_root}"]
    result = run_train([*overrides, f"paths.log_dir={log_dir}"], cwd=tmp_path)
    (run,) = log_dir.glob("*/*")
    assert list(log_dir.iterdir()) == [run.parent]
    assert_one_complete_run(run, test_examples=3)
    assert (run / "plots" / "maps.png").is_file(), "rank 0 drew the report's figures"
    assert_every_test_trajectory_once_in_order(run, compose_config(overrides))
    assert not list(run.glob("error*.txt"))
    assert "[rank 1] " in result.stdout, "rank 1 logs to the console, its rank in front"
    assert {path.name for path in tmp_path.iterdir()} <= {"outputs", "wandb-home"}, "nothing beside the run"


def assert_every_test_trajectory_once_in_order(run: Path, cfg) -> None:
    """test_errors.npz and test_physics.npz, gathered from both ranks, against persistence's errors computed here on
    the test split; test_metrics.json's physics summaries from them."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    states = datamodule.datasets["test"].states  # (3, 1 + steps, channels, nlat, nlon), normalised
    weights = area_weights(cfg.data.nlat, cfg.data.nlon, cfg.data.grid)
    persistence = relative_l2(states[:, :1].expand_as(states[:, 1:]), states[:, 1:], weights)  # (3, steps, channels)
    errors = load_test_errors(run)
    torch.testing.assert_close(
        torch.from_numpy(errors.of("rel_l2", "persistence")),
        persistence.transpose(1, 2).double(),
        rtol=1e-5,
        atol=0,
    )
    bands = latitude_band_relative_l2(states[:, :1].expand_as(states[:, 1:]), states[:, 1:], weights)  # (3, steps, ...)
    torch.testing.assert_close(
        torch.from_numpy(load_test_physics(run).of("latitude_band_rel_l2", "persistence")),
        bands.permute(0, 2, 3, 1).double(),
        rtol=1e-5,
        atol=0,
    )
    assert_physics_summaries_are_the_means_of_test_physics(run)


def test_ddp_inside_a_multirun_keeps_every_job_in_its_folder_and_survives_a_failed_job(tmp_path, data_root):
    """lightning-hydra-template #393: no folder per rank, no sweep per rank; a diverging job fails alone."""
    log_dir = tmp_path / "outputs"
    diverging = ["training.gradient_clip_val=null", "checkpoint_every_n_steps=1"]
    args = ["-m", "training.lr=1e-3,1e30", *DDP, *diverging, f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"]
    result = run_train(args, cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    (sweep,) = log_dir.glob("*/*")
    assert sweep.name.endswith("_multirun"), "one sweep folder and nothing else under the date"
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir())
    assert [job.name[:2] for job in jobs] == ["0_", "1_"]
    assert_one_complete_run(jobs[0])
    error = (jobs[1] / "error.txt").read_text().splitlines()[0]
    assert error.startswith("NonFiniteLossError: Training stopped: non-finite")
    assert (jobs[1] / "error_rank1.txt").is_file(), "rank 1 failed on the same loss and said so"
    assert len(wandb_runs(jobs[1])) == 1
    assert f"1 of 2 sweep jobs failed (see error.txt in each):\n  - {jobs[1].name}: {error}" in result.stderr
    assert "2 jobs: 1 completed, 1 failed" in (sweep / "comparison.md").read_text()


def test_tasks_started_by_slurm_share_one_run_folder(tmp_path, data_root):
    """Two tasks of a SLURM job (cluster=slurm, trainer.devices=2), as srun starts them: each runs the job itself."""
    run = tmp_path / "run"
    args = [*DDP, f"paths.data_root={data_root}", f"hydra.run.dir={run}"]
    with socket.socket() as probe:  # a free port for the two tasks to meet on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []
    for rank in (0, 1):
        slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "77"}
        slurm |= {"SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0"}
        slurm |= {
            "SLURM_NODELIST": "localhost",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        output = (tmp_path / f"rank{rank}.out").open("w")
        command = [sys.executable, str(REPO / "train.py"), *args]
        env = {**os.environ, **slurm}
        processes.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT))
    codes = [process.wait(timeout=300) for process in processes]
    assert codes == [0, 0], (tmp_path / "rank1.out").read_text()[-3000:]
    assert_one_complete_run(run)
    assert "[rank 1] " in (tmp_path / "rank1.out").read_text()


@pytest.mark.parametrize(("devices", "accumulation", "distributed"), [(1, 4, False), (2, 2, True), (4, 1, True)])
def test_devices_share_the_effective_batch(devices, accumulation, distributed):
    cfg = compose_config(["batch_size=4", "training.effective_batch_size=16", f"trainer.devices={devices}"])
    assert cfg.trainer.accumulate_grad_batches == accumulation
    assert cfg.isdist is distributed


def test_the_ddp_preset_is_two_ddp_devices():
    """The README's `trainer=ddp` is its `trainer.devices=2 trainer.strategy=ddp`, which the runs above make."""
    assert compose_config(["trainer=ddp"]) == compose_config(["trainer.devices=2", "trainer.strategy=ddp"])


def test_devices_that_do_not_divide_the_effective_batch_stop_the_run(tmp_path):
    with pytest.raises(ConfigError, match=r"batch_size=4 x 3 device\(s\).*, or trainer.devices"):
        check_config(compose_hydra_config(["batch_size=4", "training.effective_batch_size=16", "trainer.devices=3"]))
    result = run_train(
        ["batch_size=4", "training.effective_batch_size=16", "trainer.devices=3", f"paths.log_dir={tmp_path}/outputs"],
        tmp_path,
        False,
    )
    assert result.returncode == 1 and "trainer.devices" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_several_devices_train_with_the_run_folder_ddp():
    assert isinstance(run_folder_strategy("ddp", True), RunFolderDDPStrategy)
    assert isinstance(run_folder_strategy("auto", True), RunFolderDDPStrategy)
    assert run_folder_strategy("ddp_find_unused_parameters_true", True)._ddp_kwargs == {"find_unused_parameters": True}
    assert run_folder_strategy("auto", False) is None, "one device: Lightning's choice"
    assert run_folder_strategy("ddp_spawn", True) is None, "spawned processes do not run the script again"


def test_other_ranks_run_this_job_in_its_folder(tmp_path):
    """Whatever launched rank 0 (-m, submitit), the other ranks run train.py with the job's overrides only."""
    folder = tmp_path / "2026-01-01_10-00-00_multirun" / "1_sfno32x64_model.modes=8,8_it's"
    compose_config(["training.lr=0.002", "model.modes=[8,8]"], output_dir=folder)
    command, cwd = rank_command()
    assert command[1:] == [
        str(REPO / "train.py"),
        "training.lr=0.002",
        "model.modes=[8,8]",
        "hydra.run.dir='" + str(folder).replace("'", "\\'") + "'",
        "hydra.output_subdir=null",
    ]
    assert cwd == str(Path.cwd())


def test_only_rank_zero_writes_the_log_file_and_hydra_files(monkeypatch):
    hydra = compose_hydra_config([]).hydra
    assert list(hydra.job_logging.root.handlers) == ["console", "file"]
    assert hydra.job_logging.handlers.file.delay is True
    assert hydra.output_subdir == ".hydra"
    assert hydra.job_logging.formatters.simple.format.startswith("[%(asctime)s]")
    monkeypatch.setenv("LOCAL_RANK", "1")  # how Lightning starts rank 1; SLURM sets SLURM_PROCID
    hydra = compose_hydra_config([]).hydra
    assert list(hydra.job_logging.root.handlers) == ["console"]
    assert hydra.output_subdir is None
    assert hydra.job_logging.formatters.simple.format.startswith("[rank 1] [%(asctime)s]")


@pytest.fixture(params=[1, 2], ids=["1 task", "2 tasks"])
def slurm_job(request, monkeypatch) -> int:
    """The environment of rank 0 of a SLURM job of 1 or 2 tasks on one node, as sbatch and srun set it."""
    tasks = request.param
    for name, value in {
        "SLURM_NTASKS": str(tasks),
        "SLURM_NTASKS_PER_NODE": str(tasks),
        "SLURM_JOB_NAME": "train",
        "SLURM_JOB_ID": "1234",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "node1",
    }.items():
        monkeypatch.setenv(name, value)
    return tasks


def test_under_slurm_lightning_leaves_the_requeue_to_submitit(slurm_job):
    settings = trainer_settings(compose_config(["trainer.accelerator=cpu", f"trainer.devices={slurm_job}"]))
    (environment,) = settings["plugins"]
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
    trainer = Trainer(accelerator="cpu", devices=slurm_job, logger=False, enable_checkpointing=False, **settings)
    assert trainer._accelerator_connector.cluster_environment is environment
    if slurm_job > 1:  # SLURM started every task: the run-folder DDP starts no process of its own
        assert isinstance(trainer.strategy, RunFolderDDPStrategy)
        assert trainer.strategy.cluster_environment is environment and environment.creates_processes_externally
    before = signal.getsignal(environment.requeue_signal)
    trainer._signal_connector.register_signal_handlers()
    try:
        assert signal.getsignal(environment.requeue_signal) is before, "no SIGUSR1 requeue handler of Lightning's"
    finally:
        trainer._signal_connector.teardown()


def test_outside_slurm_lightning_chooses_its_environment():
    assert "plugins" not in trainer_settings(compose_config([]))
