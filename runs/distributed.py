"""Multi-process (DDP) runs that stay in one run folder, and SLURM jobs whose requeue is submitit's alone.

Lightning's DDP launcher starts ranks 1..N-1 by running the script again with the parent's command line and
`hydra.run.dir=<run dir>` appended. Under Hydra this scatters a run (lightning-hydra-template issue #393):

- inside a multirun the command line holds `-m` and every sweep value: each child rank runs a sweep of its own,
  with its own sweep folder, and `hydra.run.dir` (unused by a multirun job) claims a stray dated folder when read;
- in a submitit job the command line is submitit's, not train.py's;
- a child rank that fails with the error rank 0 also has (a non-finite loss) makes Lightning's child observer
  SIGKILL the parent: a whole sweep ends with one failed job;
- after one DDP job, the launcher's environment (LOCAL_RANK...) stays in the process: the next job of an in-process
  sweep would take itself for a child and wait forever for ranks nobody starts.

`RunFolderDDPStrategy` is Lightning's DDP with a launcher that starts each other rank as
`python train.py <this job's overrides> hydra.run.dir=<this job's folder> hydra.output_subdir=null` in run mode,
watches it without killing the sweep for a failure the rank handled itself, and `release()` gives the process back
as it found it. The ranks share the run folder; the config (`config/globals.yaml: hydra.job_logging`,
`hydra.output_subdir`) keeps train.log and .hydra/ rank 0's, Lightning keeps checkpoints, CSV and W&B logging
rank 0's.

Under SLURM (`cluster=slurm`) the tasks are started by srun, one per device, and Lightning's SLURMEnvironment finds
them; its own requeue (SIGUSR1 -> scontrol requeue) is switched off, as submitit requeues (SIGUSR2 -> checkpoint the
job -> requeue), and the requeued job continues from ckpt/last.ckpt (train.py).
"""

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig

from runs.failures import RANK_FAILED_EXIT_CODE
from runs.folder import quoted

log = logging.getLogger(__name__)

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"
# Set by the launcher for the other ranks; removed again by `release()`.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# How long `release()` waits for the other ranks to end on their own before it kills them.
RANK_EXIT_TIMEOUT_S = 120


def trainer_settings(cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments that depend on where the run runs: the DDP strategy, and SLURM without Lightning's requeue."""
    settings: dict[str, Any] = {}
    strategy = run_folder_strategy(cfg.trainer.strategy, cfg.isdist)
    if strategy is not None:
        settings["strategy"] = strategy
    if SLURMEnvironment.detect():
        settings["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return settings


def run_folder_strategy(name: object, distributed: bool) -> "RunFolderDDPStrategy | None":
    """`RunFolderDDPStrategy` for a multi-process run whose strategy is "auto" or one of Lightning's DDP names that
    start processes by running the script again ("ddp", "ddp_find_unused_parameters_true"...), else None: other
    strategies ("ddp_spawn", a single device) go to Lightning as they are."""
    if not distributed or not isinstance(name, str):
        return None
    name = "ddp" if name == "auto" else name
    entry = StrategyRegistry[name] if name in StrategyRegistry else None
    if entry is None or entry["strategy"] is not DDPStrategy:
        return None
    params = dict(entry["init_params"])
    if params.pop("start_method", "popen") != "popen":
        return None
    return RunFolderDDPStrategy(**params)


def rank_command() -> tuple[list[str], str]:
    """The command line of the other ranks of this job, and the directory to run it in.

    This job's own overrides (one job of a sweep: its values, never `-m`), its folder as `hydra.run.dir`, and no
    .hydra/ of their own; run from where the command was started, so relative paths mean the same.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = quoted(str(hydra_cfg.runtime.output_dir))
    overrides = [*hydra_cfg.overrides.task, f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]
    return [sys.executable, str(TRAIN_SCRIPT), *overrides], hydra_cfg.runtime.cwd


class RankObserver(threading.Thread):
    """Watches the other ranks; when one dies of something its run did not handle (a crash, a kill), kills them all
    and this process, as Lightning's observer does, so that no rank waits forever in a collective for a dead one.

    A rank that exits with RANK_FAILED_EXIT_CODE reported its failure: rank 0 fails too (the same error, or the
    broken collective) and reports it, so a sweep goes on with its next job.
    """

    def __init__(self, processes: list[subprocess.Popen], period_s: float = 2.0) -> None:
        super().__init__(daemon=True, name="rank-observer")
        self.processes, self.period_s = processes, period_s
        self.main_pid = os.getpid()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period_s):
            codes = [process.poll() for process in self.processes]
            crashed = [
                (rank, code) for rank, code in enumerate(codes, 1) if code not in (None, 0, RANK_FAILED_EXIT_CODE)
            ]
            if crashed:
                ranks = ", ".join(f"rank {rank} (exit status {code})" for rank, code in crashed)
                log.error("%s ended unexpectedly: ending every rank of this run", ranks)
                for process in self.processes:
                    if process.poll() is None:
                        process.kill()
                os.kill(self.main_pid, signal.SIGKILL)
                return
            if all(code is not None for code in codes):
                return


class RunFolderLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher of the other ranks, with the command line of `rank_command()` and a `RankObserver`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer: RankObserver | None = None

    def launch(self, function: Any, *args: Any, trainer: Trainer | None = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self.observer = RankObserver(self.procs)
            self.observer.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        environment = self.cluster_environment
        os.environ["MASTER_ADDR"] = environment.main_address
        os.environ["MASTER_PORT"] = str(environment.main_port)
        os.environ["NODE_RANK"] = str(environment.node_rank())
        os.environ["LOCAL_RANK"] = str(environment.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        command, cwd = rank_command()
        log.info("starting %d other rank(s): %s", self.num_processes - 1, " ".join(command))
        for local_rank in range(1, self.num_processes):
            env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))

    def wait_for_ranks(self) -> None:
        """Let the other ranks end (they are done when rank 0 is); kill those still there after a while."""
        if self.observer is not None:
            self.observer.stopped.set()
        for rank, process in enumerate(self.procs, 1):
            try:
                process.wait(timeout=RANK_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("rank %d did not end within %d s: killing it", rank, RANK_EXIT_TIMEOUT_S)
                process.kill()
                process.wait()


class RunFolderDDPStrategy(DDPStrategy):
    """Lightning's DDP whose other ranks run this job in this job's folder (see the module's docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._environment_before = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}

    def _configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        self._launcher = RunFolderLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    def release(self) -> None:
        """End the process group, wait for the ranks this process started, and restore the launch variables, so
        that a next job in this process (an in-process sweep) starts its own ranks."""
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if isinstance(self._launcher, RunFolderLauncher):
            self._launcher.wait_for_ranks()
        for name, value in self._environment_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def release(trainer: Trainer) -> None:
    """The end of a run: `RunFolderDDPStrategy.release()` when the run had several processes."""
    if isinstance(trainer.strategy, RunFolderDDPStrategy):
        trainer.strategy.release()
