"""A run folder: claimed when the run starts, and where each file of a run lies in it; a sweep folder: its jobs.

Everything that finds a run's files by name (config checks, resume, evaluate.py, reports) takes the names from here.
"""

import fnmatch
import json
import math
import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from custom_resolvers import prepend_underscore, safe_dirname

SAVED_CONFIG = Path(".hydra") / "config.yaml"  # the task config as composed (unresolved)
SAVED_HYDRA = Path(".hydra") / "hydra.yaml"  # Hydra's node: the group choices and overrides of the launch
SAVED_OVERRIDES = Path(".hydra") / "overrides.yaml"
CKPT_DIR = Path("ckpt")
LAST_CHECKPOINT = CKPT_DIR / "last.ckpt"
BEST_CHECKPOINTS = "best-*.ckpt"  # the monitored checkpoint's file names in CKPT_DIR
ERROR_FILE = "error.txt"
METRICS_FILE = "test_metrics.json"
ERRORS_FILE = "test_errors.npz"  # every forecast's errors per test trajectory (evaluation.test_errors)
PHYSICS_FILE = "test_physics.npz"  # invariants, spectra, latitude bands per test trajectory (evaluation.test_physics)
METRICS_CSV = "metrics.csv"  # the training curves: Lightning's CSVLogger writes it in the run folder
PLOTS_DIR = Path("plots")
WANDB_ID_FILE = "wandb_id.txt"
EVAL_DIR = Path("eval")  # evaluate.py's evaluations of the run, one folder each (evaluation_folder)
EVAL_CONFIG = "config.yaml"  # in an evaluation's folder: the config it ran with, as composed
EVAL_OVERRIDES = "overrides.yaml"  # in an evaluation's folder: evaluate.py's overrides
EVAL_LOG = "evaluate.log"
EVAL_COMPARISON = "eval"  # in a sweep folder: eval_<overrides>/, the comparison of its jobs' evaluations
SAVED_CONFIG_KEYS = ("data", "model", "training", "trainer")  # a saved config without one of these is damaged


class DamagedFileError(ValueError):
    """A file of a run folder that exists but cannot be read; the message names it and what to do."""


def claim(folder: str, reuse: bool) -> str:
    """Create ``folder`` for this run, atomically, or the next free ``folder_2``, ``folder_3``...

    Run names have one-second resolution: a run started in the same second with the same overrides finds the
    folder taken and gets the next name, so two runs never share a folder. ``reuse=True`` (the debug folder)
    empties ``folder`` instead, so that nothing of the previous debug run is left in it.
    """
    if reuse:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)
    candidate, number = folder, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = f"{folder}_{number}"


def evaluation_folder(run_dir: Path, overrides: list[str]) -> Path:
    """A new folder for one evaluation of the run in ``run_dir``: eval/<date>_<time>_<overrides>, flat and unique as
    run folders are (`claim`), so that an evaluation never writes over the training's report or another's."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    name = safe_dirname(stamp + prepend_underscore("_".join(overrides)))
    return Path(claim(str(Path(run_dir) / EVAL_DIR / name), reuse=False))


def quoted(folder: str) -> str:
    """``folder`` as one quoted value of Hydra's override grammar (folder names hold `=`, `,` and quotes)."""
    return "'" + folder.replace("\\", "\\\\").replace("'", "\\'") + "'"


def saved_config(run_dir: Path) -> DictConfig:
    """The task config a run was started with; `DamagedFileError` when it cannot be read or lacks one of the
    SAVED_CONFIG_KEYS (a truncated file can still be valid YAML)."""
    path = Path(run_dir) / SAVED_CONFIG
    try:
        config = OmegaConf.load(path)
    except Exception as error:  # YAML errors, undecodable bytes: all mean the same to the user
        raise DamagedFileError(_lost_config(run_dir, f"{path} cannot be read ({type(error).__name__})")) from error
    missing = [key for key in SAVED_CONFIG_KEYS if not isinstance(config, DictConfig) or key not in config]
    if missing:
        raise DamagedFileError(_lost_config(run_dir, f"{path} is incomplete (no {', '.join(missing)})"))
    return config


def _lost_config(run_dir: Path, problem: str) -> str:
    overrides = Path(run_dir) / SAVED_OVERRIDES
    again = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else "<the overrides it had>"
    return f"{problem}: the run cannot go on without its config; start it again: python train.py {again}"


def started_with(run_dir: Path) -> DictConfig:
    """The `hydra` node of the command that started the run in ``run_dir`` (its group choices, its overrides), also
    on a resume; this process's where the run has not saved one (`hydra.output_subdir=null`)."""
    path = Path(run_dir) / SAVED_HYDRA
    if path.is_file():
        return OmegaConf.load(path).hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get()


def checkpoint_progress(path: Path) -> tuple[int, int]:
    """(epochs finished, optimizer steps taken) of the run saved in checkpoint ``path``; `DamagedFileError` when the
    file cannot be read (truncated by a full disk, a cut copy), naming the newest intact checkpoint beside it."""
    try:
        return _progress(path)
    except Exception as error:  # zip, pickle and EOF errors of torch.load all mean a damaged file
        run_dir = path.parent.parent
        intact = newest_intact_checkpoint(path.parent, exclude=path)
        if intact is None:
            choice = "no other checkpoint in it can be read: start the run again"
        else:
            epochs, step = _progress(intact)
            choice = (
                f"the newest intact checkpoint is {intact.name} (epoch {epochs}, step {step}): to go on from it, "
                f"cp {intact} {run_dir / LAST_CHECKPOINT} and resume again; or start the run again"
            )
        raise DamagedFileError(f"{path} cannot be read ({type(error).__name__}): {choice}") from error


def _progress(path: Path) -> tuple[int, int]:
    import torch  # here, not at the top: a bad config fails before importing torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"], checkpoint["global_step"]


def newest_intact_checkpoint(ckpt_dir: Path, exclude: Path) -> Path | None:
    """The most recently written checkpoint in ``ckpt_dir`` other than ``exclude`` that loads, or None."""
    candidates = sorted(Path(ckpt_dir).glob("*.ckpt"), key=lambda path: path.stat().st_mtime, reverse=True)
    for candidate in candidates:
        if candidate == exclude:
            continue
        try:
            _progress(candidate)
        except Exception:  # damaged too: try the next one
            continue
        return candidate
    return None


def find_checkpoint(run_dir: Path, which: str) -> Path:
    """The checkpoint ``which`` names: "last" (ckpt/last.ckpt), "best" (the monitored one) or a path."""
    if which == "last":
        path = Path(run_dir) / LAST_CHECKPOINT
    elif which == "best":
        candidates = sorted((Path(run_dir) / CKPT_DIR).glob(BEST_CHECKPOINTS))
        path = candidates[-1] if candidates else Path(run_dir) / CKPT_DIR / BEST_CHECKPOINTS
    else:
        path = Path(which)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: pass --checkpoint best, --checkpoint last or a .ckpt path")
    return path


def evaluation_comparison_folder(sweep_dir: str | Path, overrides: list[str]) -> Path:
    """Where the comparison of a sweep's evaluations with ``overrides`` goes: <sweep>/eval_<overrides>/, beside the
    sweep's own report, never over it."""
    return Path(sweep_dir) / safe_dirname(EVAL_COMPARISON + prepend_underscore("_".join(overrides)))


def find_evaluation(run_dir: Path, overrides: list[str]) -> Path | None:
    """The newest finished evaluation of the run's best checkpoint (the one chosen on validation) whose
    overrides.yaml holds exactly ``overrides``, in any order; None without one.

    Newest by folder name (evaluation_folder: a time stamp first, `_2`... for the same second). Unfinished or
    failed evaluations (no readable test_metrics.json) and evaluations of another checkpoint (`--checkpoint last`)
    do not count.
    """
    wanted = sorted(overrides)
    folders = sorted((Path(run_dir) / EVAL_DIR).glob(f"*/{EVAL_OVERRIDES}"), key=lambda path: path.parent.name)
    for folder in reversed([path.parent for path in folders]):
        metrics_path = folder / METRICS_FILE
        if sorted(map(str, OmegaConf.load(folder / EVAL_OVERRIDES))) != wanted or not metrics_path.is_file():
            continue
        try:
            checkpoint = Path(json.loads(metrics_path.read_text()).get("checkpoint", ""))
        except json.JSONDecodeError:  # cut short while written: not finished
            continue
        if fnmatch.fnmatch(checkpoint.name, BEST_CHECKPOINTS):
            return folder
    return None


def collect_jobs(sweep_dir: str | Path, evaluation: list[str] | None = None) -> list[dict[str, Any]]:
    """Every job of a sweep with its test metrics, or why it has none, so that failed jobs show in the reports.

    Job folders are the subfolders holding `.hydra/`, ordered by the job number that starts their name. Each job:
    {"job": folder name, "path": Path, "results": the folder of its test files, "status": "completed" | "failed" |
    "missing", "metrics": dict | None, "error": str | None}. Without ``evaluation``, a job's results are its own
    (`results` is its folder). With it (evaluate.py's overrides, e.g. ["eval.rollout_steps=500"]), they are those of
    its newest matching evaluation (`find_evaluation`), the training time kept from the job's own; a job that
    trained but has no such evaluation is "missing".
    """
    job_dirs = [path for path in Path(sweep_dir).iterdir() if (path / SAVED_CONFIG).parent.is_dir()]
    jobs = [_load_job(job_dir) for job_dir in sorted(job_dirs, key=job_number)]
    if evaluation is None:
        return jobs
    return [_evaluated(job, evaluation) for job in jobs]


def job_number(job_dir: Path) -> tuple[float, str]:
    """Sort key: Hydra names job folders `<job number>_<overrides>`; names without a number go last."""
    match = re.match(r"\d+", job_dir.name)
    return (int(match.group()) if match else math.inf, job_dir.name)


def _load_job(job_dir: Path) -> dict[str, Any]:
    job = {"job": job_dir.name, "path": job_dir, "results": job_dir, "status": "failed", "metrics": None, "error": None}
    metrics_path, error_path = job_dir / METRICS_FILE, job_dir / ERROR_FILE
    if metrics_path.is_file():
        try:
            return job | {"status": "completed", "metrics": json.loads(metrics_path.read_text())}
        except json.JSONDecodeError as error:
            return job | {"error": f"unreadable {METRICS_FILE}: {error}"}
    if error_path.is_file():
        lines = error_path.read_text().splitlines()
        return job | {"error": lines[0] if lines else f"empty {ERROR_FILE}"}
    return job | {"error": f"no {METRICS_FILE}"}


def _evaluated(job: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    folder = find_evaluation(job["path"], overrides)
    if folder is None:
        if job["status"] != "completed":
            return job
        command = " ".join(["python evaluate.py", str(job["path"]), *overrides])
        return job | {"status": "missing", "metrics": None, "error": f"no finished evaluation: {command}"}
    metrics = {"train_time_s": (job["metrics"] or {}).get("train_time_s")}
    metrics |= json.loads((folder / METRICS_FILE).read_text())
    return job | {"results": folder, "status": "completed", "metrics": metrics, "error": None}
