"""Run folders: one flat, readable, unique folder per run, whatever the overrides hold."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from custom_resolvers import safe_dirname
from runs.folder import claim
from tests.conftest import REPO, TINY, compose_hydra_config

STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
SAFE_NAME = re.compile(r"[A-Za-z0-9._,=+~-]+")


def run_folder(overrides: list[str]) -> Path:
    """The folder `python train.py <overrides>` would get below outputs/ (the test's: SWE_LOG_DIR), claimed as a run
    claims it."""
    return Path(claim(str(compose_hydra_config(overrides).hydra.run.dir), reuse=False))


def test_blog_example_keeps_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = run_folder(["model=sfno", "data=64x128", "data.num_examples=50", "training.max_epochs=1"])
    assert folder.parent.parent == tmp_path / "outputs"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.parent.name)
    assert folder.name.startswith(f"{folder.parent.name}_")
    assert re.fullmatch(rf"{STAMP}_sfno64x128_data\.num_examples=50_training\.max_epochs=1", folder.name)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+wandb.notes=a/b/../c", "+wandb.notes=a-b-..-c"),
        ("+wandb.notes=two words", "+wandb.notes=two-words"),
        ("+wandb.notes='say \"hi\"'", "+wandb.notes=say-hi"),
        ('logger.wandb.name="x: y"', "logger.wandb.name=x-y"),
        ("model.modes=[16,32]", "model.modes=16,32"),
        ("+wandb.config={a:1,b:[2]}", "+wandb.config=a-1,b-2"),
        ("+paths.scratch=/tmp/swe cache", "+paths.scratch=-tmp-swe-cache"),
    ],
)
def test_any_value_gives_one_flat_folder(override, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = run_folder([override])
    assert folder.name.endswith(f"_sfno32x64_{expected}")
    assert SAFE_NAME.fullmatch(folder.name)
    created = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    expected = [Path("outputs"), folder.parent.relative_to(tmp_path), folder.relative_to(tmp_path)]
    assert created == expected, "exactly one folder below outputs/<date>"


def test_sweep_subfolders_use_the_same_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subdir = compose_hydra_config(["hydra.job.num=3", "+wandb.notes='a/b [c]'"]).hydra.sweep.subdir
    assert subdir == "3_sfno32x64_+wandb.notes=a-b-c"


def test_long_override_lists_are_cut_with_a_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = [f"+wandb.config.key{index}={'v' * 20}" for index in range(20)]
    first = run_folder(overrides).name
    second = run_folder([*overrides[:-1], f"+wandb.config.key19={'w' * 20}"]).name
    assert len(first.encode()) <= 255 and len(second.encode()) <= 255
    assert re.fullmatch(rf"{STAMP}_sfno32x64_\+wandb\.config\.key0=v+_.*_[0-9a-f]{{8}}", first)
    assert first[-8:] != second[-8:], "different override lists keep different names"


def test_safe_dirname_limits():
    assert safe_dirname("plain_name=1.0,2") == "plain_name=1.0,2"
    assert len(safe_dirname("aé/" * 500).encode()) == 240  # non-ASCII is replaced: characters are bytes


def test_claim_takes_a_free_folder_and_empties_the_debug_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = compose_hydra_config(["training.max_epochs=1"])
    assert config.hydra.run.dir == config.hydra.run.dir
    assert not (tmp_path / "outputs").exists(), "naming the folder creates nothing"
    folder = Path(config.hydra.run.dir)
    assert claim(str(folder), False) == str(folder)
    assert claim(str(folder), False) == f"{folder}_2"
    (tmp_path / "outputs" / "debug" / "ckpt").mkdir(parents=True)
    assert claim("outputs/debug", True) == "outputs/debug"
    assert list((tmp_path / "outputs" / "debug").iterdir()) == [], "nothing of the previous debug run is left"


def test_claim_gives_concurrent_runs_their_own_folders(tmp_path):
    folders = []
    threads = [
        threading.Thread(target=lambda: folders.append(claim(str(tmp_path / "day" / "same-second"), False)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {
        str(tmp_path / "day" / "same-second"),
        *(str(tmp_path / "day" / f"same-second_{n}") for n in range(2, 9)),
    }
    assert set(folders) == expected


def test_two_runs_with_one_name_get_two_folders(tmp_path, data_root):
    """Two real runs started together whose folder name is the same, as in one second with the same overrides."""
    args = [*TINY, f"paths.data_root={data_root}", "output_dir_scheme=2000-01-01/same-second"]
    command = [sys.executable, str(REPO / "train.py"), *args]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [run.communicate()[0].decode() for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
    folders = sorted((tmp_path / "outputs" / "2000-01-01").iterdir())
    assert [folder.name for folder in folders] == ["same-second", "same-second_2"]
    for folder in folders:
        assert (folder / "ckpt" / "last.ckpt").is_file()
        assert yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) == args
