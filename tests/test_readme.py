"""The README's commands work as written: each command of the README's "What you run" block and of docs/cluster.md's
first block runs, with tiny settings appended, except those listed in SKIPPED (they need a cluster or a particular
run folder, or another test runs them already)."""

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_DATA

SECTIONS = (("README.md", "## What you run"), ("docs/cluster.md", "# Cluster and sweeps"))
# What cannot run on a 2-core machine without SLURM, by a piece of the command, and why.
SKIPPED = {
    "cluster=slurm": "needs a SLURM cluster (the sbatch script is tested in test_sweeps.py)",
    "evaluate.py outputs/2026-11-27/": "names a run folder of the README's example (evaluate.py: test_evaluate.py)",
    "init_from=outputs/2026-11-27/": "names a run folder of the README's example (init_from: test_init_from.py)",
    # Runs another test makes with the same command and tiny settings, and checks further: one run each, not two.
    "python train.py debug=True": "test_run_folders.py runs it (twice: the debug folder is replaced)",
    "python train.py -m model=sfno,fno": "test_run_folders.py runs this sweep and checks each job's folder",
    "trainer.devices=2 trainer.strategy=ddp": "test_distributed.py runs this DDP run and checks its one folder",
    "python train.py trainer=ddp": "test_distributed.py: the preset composes to trainer.devices=2 trainer.strategy=ddp",
    "trainer.precision=bf16-mixed": "test_precision.py runs it and checks float32 weights and finite test errors",
    "hydra/launcher=submitit_local model=sfno,fno": "test_sweeps.py runs this sweep, its jobs in parallel",
    "# default config: neuraloperator.yaml": "test_run_folders.py runs it and checks the folder it leaves",
    "--config-name=neuraloperator model=fno data=32x64": "test_run_folders.py's sweep runs model=fno on these data",
    "trainer.fast_dev_run=True": "test_structure.py runs it and checks it passes the checks and leaves no checkpoint",
    "float32_matmul_precision=high": "test_precision.py trains with it and checks that a run applies it",
}
# Tiny runs that leave every key the README sets alone (no effective batch size: the DDP line must work as written).
TINY_RUN = [*TINY_DATA, "batch_size=2", "training.max_epochs=1", "model.width=8", "model.layers=1"]
TINY_SEARCH = ["hydra.sweeper.n_trials=2"]
# Every model of the study from one seed: its report then tests paired over test trajectories end to end; the
# across-seed (Welch) path is tested on job folders of three seeds each in test_report.py.
TINY_STUDY = ["seed=0"]


def readme_commands() -> list[str]:
    """The command lines of the first bash block of each of SECTIONS."""
    commands = []
    for document, heading in SECTIONS:
        text = (REPO / document).read_text()
        section = text[text.index(heading) :]
        block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
        commands += [line.strip() for line in block.splitlines() if line.startswith("python ")]
    return commands


def test_the_readme_blocks_are_found_and_every_skip_is_used():
    commands = readme_commands()
    assert len(commands) >= 10
    for piece in SKIPPED:
        assert any(piece in command for command in commands), f"SKIPPED names {piece!r}, which no command has"


@pytest.mark.parametrize("command", readme_commands(), ids=lambda command: command.split("#")[0].strip())
def test_readme_command(command, tmp_path, data_root):
    reason = next((why for piece, why in SKIPPED.items() if piece in command), None)
    if reason:
        pytest.skip(reason)
    args = shlex.split(command, comments=True)
    assert args[:2] == ["python", "train.py"], f"only train.py commands run here: {command}"
    tiny = [*TINY_RUN, f"paths.data_root={data_root}", f"paths.log_dir={tmp_path / 'outputs'}"]
    # W&B's own start costs a tiny run a seventh of its time; the runs and sweeps of test_run_folders.py and
    # test_sweeps.py keep it.
    if not any(arg.startswith("logger=") for arg in args):
        tiny.append("logger=csv")
    if any(arg.startswith("hparams_search=") for arg in args):  # an Optuna search: two tiny trials
        tiny += TINY_SEARCH
    if "experiment=sfno_vs_fno" in args:
        tiny += TINY_STUDY
    prints = "--cfg" in args
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args[2:], *([] if prints else tiny)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    if prints:
        assert list(tmp_path.iterdir()) == [], "printing the config creates nothing"
    else:
        assert list((tmp_path / "outputs").rglob("test_metrics.json")), "the run reached its test stage"
