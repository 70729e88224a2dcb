"""The app's shape: train() on one page, everything pluggable from config, resolvers without side effects, one home
for the run-folder layout, and damaged run files that stop a resume with one message."""

import importlib
import inspect
import math
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch import Callback as LightningCallback
from omegaconf import OmegaConf, read_write

import evaluation
import runs
from runs.checks import ConfigError, check_config
from runs.folder import LAST_CHECKPOINT, SAVED_CONFIG
from runs.start import start_run
from tests.conftest import REPO, TINY, compose_config, compose_hydra_config, run_train
from train import train


# 1. train() reads as one page, straight through.
def test_train_is_one_page():
    from train import train

    assert len(inspect.getsource(train).splitlines()) <= 60


def test_debug_is_config_that_overrides_trainer_and_logger_settings(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # an earlier W&B run in this process may have set it
    debug = compose_config(["debug=True"])
    assert (debug.trainer.max_epochs, debug.trainer.limit_train_batches, debug.trainer.limit_test_batches) == (1, 4, 2)
    assert debug.logger.wandb.mode == "disabled"
    normal = compose_config(["training.max_epochs=7"])
    assert (normal.trainer.max_epochs, normal.trainer.limit_train_batches) == (7, None)
    assert normal.logger.wandb.mode == "offline"


def fake_checkpoint(path: Path, epochs: int, step: int) -> None:
    """A file with what a resume reads of a Lightning checkpoint: its progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    loops = {"fit_loop": {"epoch_progress": {"current": {"processed": epochs}}}}
    torch.save({"loops": loops, "global_step": step}, path)


def test_the_start_decides_between_a_new_run_and_a_requeued_one(tmp_path):
    (tmp_path / "new").mkdir()  # Hydra creates the run folder before the task starts
    fresh = start_run(compose_config(TINY, output_dir=tmp_path / "new"))
    assert fresh.ckpt_path is None and fresh.cfg.logger.wandb.id
    fake_checkpoint(tmp_path / "requeued" / LAST_CHECKPOINT, epochs=0, step=3)
    requeued = start_run(compose_config(TINY, output_dir=tmp_path / "requeued"))
    assert (requeued.ckpt_path, requeued.step) == (tmp_path / "requeued" / LAST_CHECKPOINT, 3)


# 2. Everything pluggable comes from config.
def test_callbacks_and_loggers_are_config_entries():
    cfg = compose_config(["tags=[baseline,lr-scan]", "seed=3"])
    targets = [node._target_ for node in cfg.callbacks.values()]
    assert targets[0].endswith("StopOnNonFinite") and "lightning.pytorch.callbacks.LearningRateMonitor" in targets
    assert targets.index("runs.lightning_callbacks.LastCheckpoint") > targets.index(
        "lightning.pytorch.callbacks.ModelCheckpoint"
    ), "last.ckpt holds the best-model checkpoint's latest state"
    assert sorted(cfg.logger) == ["csv", "wandb"]
    assert list(compose_config(["logger=csv"]).logger) == ["csv"]
    assert compose_config(["callbacks=none"]).get("callbacks") in (None, {})
    wandb = instantiate(cfg.logger.wandb)._wandb_init
    assert wandb["tags"] == ["baseline", "lr-scan"] and wandb["job_type"] == "train" and wandb["group"] is None
    assert cfg.logger.wandb.log_model is False


def test_the_jobs_of_a_sweep_share_a_wandb_group(tmp_path):
    cfg = compose_hydra_config([])
    job = tmp_path / "2026-01-01_10-00-00_multirun" / "1_fno32x64"
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(job)
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.wandb.group == "2026-01-01_10-00-00_multirun"


def presets(group: str) -> list[str]:
    """The options of a config group, as the config tree holds them."""
    return sorted(path.stem for path in (REPO / "config" / group).glob("*.yaml"))


# What the hardware presets are for: (accelerator, devices, strategy).
HARDWARE = {"cpu": ("cpu", 1, "auto"), "gpu": ("gpu", 1, "auto"), "ddp": ("auto", 2, "ddp")}


@pytest.mark.parametrize("trainer", presets("trainer"))
def test_the_trainer_group(trainer):
    cfg = compose_config([f"trainer={trainer}"])
    assert cfg.trainer.max_epochs == cfg.training.max_epochs, "the epochs are a training hyperparameter"
    if trainer in HARDWARE:
        assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == HARDWARE[trainer]


def test_the_hardware_presets_exist():
    assert set(HARDWARE) <= set(presets("trainer"))


def test_fast_dev_run(tmp_path, data_root, caplog):
    """Lightning's smoke test passes the checks and runs every stage once, leaving no checkpoint to resume from."""
    overrides = [*TINY, f"paths.data_root={data_root}", "trainer.fast_dev_run=True", "logger=csv"]
    check_config(compose_hydra_config(overrides))
    assert math.isfinite(train(compose_config(overrides, output_dir=tmp_path)))
    assert "Running in `fast_dev_run` mode" in caplog.text
    assert not (tmp_path / LAST_CHECKPOINT).exists()


# 3. Resolvers without side effects.
def test_resolving_every_config_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for overrides in ([], ["debug=True"], ["resume=outputs/a/b"]):
        cfg = compose_hydra_config(overrides)
        assert cfg.hydra.run.dir and cfg.hydra.sweep.dir and cfg.hydra.sweep.subdir
        OmegaConf.to_container(compose_config(overrides), resolve=True)
    assert list(tmp_path.iterdir()) == []
    for what in ("job", "all"):
        result = run_train(["--cfg", what, "--resolve"], cwd=tmp_path)
        assert "ckpt_dir:" in result.stdout and "${" not in result.stdout
        assert list(tmp_path.iterdir()) == []


# 4. One home per fact; runs/ and evaluation/ say who calls them.
def test_the_config_puts_checkpoints_where_the_layout_says(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert instantiate(cfg.callbacks.last_checkpoint).path == tmp_path / LAST_CHECKPOINT
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == (tmp_path / LAST_CHECKPOINT).parent


def test_no_module_mixes_hydra_and_lightning_callbacks():
    for package in (runs, evaluation):
        for module_info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(module_info.name)
            classes = [value for value in vars(module).values() if inspect.isclass(value)]
            own = [cls for cls in classes if cls.__module__ == module.__name__]
            kinds = {
                kind
                for cls in own
                for kind, base in (("hydra", HydraCallback), ("lightning", LightningCallback))
                if issubclass(cls, base)
            }
            assert len(kinds) <= 1, f"{module.__name__} defines both Hydra and Lightning callbacks"


# 1 and 2: the experiment presets and --help.
def test_a_sweep_preset_without_multirun_stops_and_says_to_add_m(tmp_path):
    result = run_train(["experiment=sfno_vs_fno"], cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "run it with -m, e.g. python train.py -m experiment=sfno_vs_fno" in result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_help_describes_the_app_and_lists_real_choices(tmp_path):
    result = run_train(["--help"], cwd=tmp_path)
    assert "trains a neural operator" in result.stdout
    listing = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = dict(line.split(": ", 1) for line in listing.splitlines() if ": " in line)
    folders = sorted(path.name for path in (REPO / "config").iterdir() if path.is_dir())
    assert sorted(groups) == folders
    for group in folders:
        assert groups[group] == ", ".join(sorted(presets(group))), group


# 8. Damaged files stop a resume with one message.
@pytest.fixture
def damaged_run(tmp_path) -> Path:
    """A run folder whose last.ckpt was cut short, beside an intact best checkpoint."""
    run = tmp_path / "run"
    (run / SAVED_CONFIG).parent.mkdir(parents=True)
    cfg = compose_config(TINY)
    OmegaConf.save(cfg, run / SAVED_CONFIG)
    (run / ".hydra" / "overrides.yaml").write_text("- training.max_epochs=1\n")
    fake_checkpoint(run / "ckpt" / "best-epoch000-step4.ckpt", epochs=1, step=4)
    fake_checkpoint(run / LAST_CHECKPOINT, epochs=1, step=6)
    (run / LAST_CHECKPOINT).write_bytes((run / LAST_CHECKPOINT).read_bytes()[:300])
    return run


def test_a_damaged_checkpoint_names_the_newest_intact_one(damaged_run):
    with pytest.raises(ConfigError) as error:
        check_config(compose_hydra_config([f"resume={damaged_run}"]))
    (message,) = str(error.value).splitlines()
    assert message.startswith(f"{damaged_run / LAST_CHECKPOINT} cannot be read")
    assert "the newest intact checkpoint is best-epoch000-step4.ckpt (epoch 1, step 4)" in message
    assert "or start the run again" in message


def test_a_damaged_run_config_stops_the_resume_without_a_traceback(damaged_run, tmp_path):
    config = damaged_run / SAVED_CONFIG
    config.write_text("".join(config.read_text().splitlines(keepends=True)[:3]))  # cut short, still valid YAML
    result = run_train([f"resume={damaged_run}"], cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{config} is incomplete" in result.stderr
    assert "start it again: python train.py training.max_epochs=1" in result.stderr
    config.write_bytes(b"\x00\x9f: [")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(config))} cannot be read"):
        check_config(compose_hydra_config([f"resume={damaged_run}"]))
    evaluated = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(damaged_run)], cwd=tmp_path, capture_output=True, text=True
    )
    assert evaluated.returncode == 1 and "Traceback" not in evaluated.stderr
    assert f"{config} cannot be read" in evaluated.stderr


def test_evaluate_logs_to_its_own_wandb_run_in_the_sweep_group(tmp_path):
    from evaluate import wandb_logger

    run = tmp_path / "2026-01-01_10-00-00_multirun" / "0_sfno32x64"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save({"hydra": {"mode": "MULTIRUN"}}, run / ".hydra" / "hydra.yaml")
    train_cfg = compose_config([])
    train_cfg.output_dir = str(run)
    folder = run / "eval" / "2026-01-02_10-00-00"
    init = wandb_logger(train_cfg, run, folder)._wandb_init
    assert init["job_type"] == "evaluate" and init["group"] == "2026-01-01_10-00-00_multirun"
    assert init["id"] is None, "a run of its own, beside the training run"
    assert init["dir"] == str(folder), "its files in the evaluation's folder"
    assert wandb_logger(compose_config(["logger=csv"]), run, folder) is False
