"""Wall time of `python train.py debug=True` for a tiny model against the import floor.

    python benchmarks/startup.py [--repeats 3]

The floor is `python -c "import torch, lightning.pytorch, torch_harmonics"`: what any
run of this stack pays. The breakdown is the last debug run's train.log: seconds from
the process start to each of its lines (the first comes after the imports and the
config), and to the process's exit.
Prints progress to stderr and the figures as one JSON object on the last line.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR = [sys.executable, "-c", "import torch, lightning.pytorch, torch_harmonics"]
TINY = [
    "debug=True",
    "model=sfno_th",
    "model.width=8",
    "model.layers=1",
    "data.num_examples=16",
    "data.num_val_examples=4",
    "data.num_test_examples=2",
    "data.rollout_steps=4",
]
LOG_LINE = re.compile(r"^\[(\S+ \S+)\]\[([\w.]+)\]\[\w+\] - (.*)$")


def timed(command: list[str], cwd: Path) -> tuple[float, float, float]:
    """Start time, end time (epoch seconds) and wall time of ``command``."""
    started, clock = time.time(), time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return started, time.time(), time.perf_counter() - clock


def log_phases(train_log: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds from the process start to each milestone of train.log, and from the last one to the exit.

    Before the first line: Python, the imports and Hydra composing and checking the config; after the last: the
    interpreter's exit.
    """
    phases = {}
    for line in train_log.read_text().splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            phases[match[3][:60]] = round(stamp - started, 2)
    phases["process exit"] = round(ended - started, 2)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        command = [sys.executable, str(REPO / "train.py"), *TINY]
        print("warming the data cache and the file system cache", file=sys.stderr)
        timed(command, workdir)
        timed(FLOOR, workdir)
        floors, runs = [], []
        for repeat in range(args.repeats):
            floors.append(timed(FLOOR, workdir)[2])
            started, ended, seconds = timed(command, workdir)
            runs.append(seconds)
            print(f"repeat {repeat}: floor {floors[-1]:.2f} s, debug run {runs[-1]:.2f} s", file=sys.stderr)
        phases = log_phases(workdir / "outputs" / "debug" / "train.log", started, ended)
    floor, run = statistics.median(floors), statistics.median(runs)
    print(json.dumps({"import_floor_s": floor, "debug_run_s": run, "ratio": run / floor, "last_run_phases_s": phases}))


if __name__ == "__main__":
    main()
