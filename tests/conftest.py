"""Shared settings: tiny data, tiny models, and a data cache shared by the whole session."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import custom_resolvers  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(REPO / "config")

# Small enough that a run takes seconds on two cores, large enough to exercise every path. No figures (a third of a
# tiny run's time): the tests of the figures (test_run_folders.py, test_distributed.py, test_evaluate_grids.py,
# test_train.py, test_run_report.py, test_plots.py) ask for them with eval.plots=True.
TINY_DATA = [
    "data.num_examples=8",
    "data.windows_per_epoch=8",
    "data.num_val_examples=4",
    "data.num_test_examples=2",
    "data.spinup_steps=1",
    "eval.rollout_steps=3",
    "eval.val_rollout_steps=2",
    "eval.plots=False",
]
TINY = [
    *TINY_DATA,
    "batch_size=4",
    "training.effective_batch_size=4",
    "training.max_epochs=1",
    "model.width=8",
    "model.layers=1",
]

# The default SFNO (channel-major, its convolution on models/spherical.py's transforms), for fit_tiny_module's 8x16
# grid.
TINY_SFNO = {
    "_target_": "models.fno.ChannelMajorSFNO",
    "n_modes": [4, 8],
    "in_channels": 4,  # the fields and sin(latitude)
    "out_channels": 3,
    "hidden_channels": 8,
    "n_layers": 1,
    "conv_module": {"_target_": "models.spherical.MatmulSphericalConv", "_partial_": True},
}

# Two epochs of eight one-sample steps, a step checkpoint every two: a kill lands within an epoch.
RESUMABLE = [
    *TINY_DATA,
    "batch_size=1",
    "training.effective_batch_size=1",
    "training.max_epochs=2",
    "model.width=8",
    "model.layers=1",
    "checkpoint_every_n_steps=2",
]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One data cache for the whole test session, so each tiny data set is generated once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, data_root) -> Path:
    """One finished tiny run (CSV logging only) for tests that start from a run: evaluate.py, init_from."""
    log_dir = tmp_path_factory.mktemp("finished") / "outputs"
    run_train([*TINY, "logger=csv", f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"], cwd=log_dir.parent)
    (run,) = log_dir.glob("*/*")
    return run


@pytest.fixture(autouse=True)
def quiet_wandb(tmp_path, monkeypatch):
    """Keep W&B's own cache and settings out of the home folder."""
    for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home"))


@pytest.fixture(autouse=True)
def outputs_in_tmp(tmp_path, monkeypatch):
    """Runs and data of a test land in its tmp_path (outputs/, cache/), not in the repository's: the folders that
    paths=local anchors at the repository root follow SWE_LOG_DIR and SWE_DATA_ROOT."""
    monkeypatch.setenv("SWE_LOG_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("SWE_DATA_ROOT", str(tmp_path / "cache"))


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The config `python train.py <overrides>` would get, with Hydra's runtime filled in."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("neuraloperator", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # the task function never sees it
    return cfg


def compose_hydra_config(overrides: list[str]) -> DictConfig:
    """The config with its `hydra` node, as a run starts: reading `hydra.run.dir` creates the run folder."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("neuraloperator", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_train(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python train.py <args>` as a user would, from ``cwd``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def fit_tiny_module(
    net: dict, tmp_path: Path, callbacks: list | None = None, ckpt_path: str | None = None, **trainer_settings
):
    """A `NeuralOperatorModule` around ``net`` (a `_target_` dict) fitted on random 8x16 trajectories, and its trainer.

    No data generation and no Hydra: seconds, for tests of what a fit leaves behind (checkpoints, logs).
    """
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from data import CHANNELS
    from models import NeuralOperatorModule

    module = NeuralOperatorModule(
        net=net,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        scheduler={"_target_": "models.schedules.warmup_cosine", "_partial_": True},
        channels=list(CHANNELS),
        nlat=8,
        nlon=16,
        rollout_steps=1,
        test_rollout_steps=2,
        example_leads=[1, 2],
    )
    generator = torch.Generator().manual_seed(0)
    trajectories = torch.randn(8, 3, len(CHANNELS), 8, 16, generator=generator)
    trainer = pl.Trainer(
        **{"max_epochs": 1, **trainer_settings},
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="", version=""),
        callbacks=callbacks or [],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    loaders = DataLoader(trajectories[:6], batch_size=2), DataLoader(trajectories[6:], batch_size=2)
    trainer.fit(module, *loaders, ckpt_path=ckpt_path)
    return module, trainer


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests (pytestmark = pytest.mark.usefixtures("one_thread")): on a shared
    two-core machine, two threads made small transforms many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
