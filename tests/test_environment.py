"""What a user's environment sets: W&B's WANDB_* variables, and where runs and data go whatever the working folder."""

import os
import subprocess
import sys

import yaml

from tests.conftest import REPO, TINY, compose_config, run_train


def test_wandb_variables_set_mode_project_and_entity(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    wandb = compose_config([]).logger.wandb
    assert (wandb.mode, wandb.project, wandb.entity) == ("online", "mine", "team")
    assert compose_config(["debug=True"]).logger.wandb.mode == "disabled", "a debug run writes no W&B run"
    assert compose_config(["logger.wandb.mode=offline"]).logger.wandb.mode == "offline", "the command line wins"
    for variable in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(variable)
    wandb = compose_config([]).logger.wandb
    assert (wandb.mode, wandb.project, wandb.entity) == ("offline", "neuraloperator-swe", None)


def test_wandb_mode_from_the_environment_decides_the_wandb_folder(tmp_path, data_root, monkeypatch):
    """WANDB_MODE=disabled leaves no wandb/ in a run that would otherwise write one (the default, offline, writes one:
    test_run_folders.py's run checks its offline run)."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run_train([*TINY, "logger=default", f"paths.data_root={data_root}"], cwd=tmp_path)
    (run,) = (tmp_path / "outputs").glob("*/*")
    assert (run / "test_metrics.json").is_file()
    assert not (run / "wandb").exists()


def resolved_paths(cwd, env: dict[str, str]) -> dict:
    """`paths` as `python <repo>/train.py --cfg job --resolve` prints it, started in ``cwd``."""
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--cfg", "job", "--resolve"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return yaml.safe_load(result.stdout)["paths"]


def test_outputs_and_cache_are_the_repositorys_from_any_folder_unless_the_environment_says(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("SWE_LOG_DIR", "SWE_DATA_ROOT")}
    paths = resolved_paths(tmp_path, env)
    assert (paths["log_dir"], paths["data_root"]) == (str(REPO / "outputs"), str(REPO / "cache"))
    paths = resolved_paths(tmp_path, {**env, "SWE_LOG_DIR": "/runs", "SWE_DATA_ROOT": "/data"})
    assert (paths["log_dir"], paths["data_root"]) == ("/runs", "/data")
    assert list(tmp_path.iterdir()) == [], "nothing lands in the working folder"
