"""Wall time of `python train.py debug=True` for a tiny model against the import floor.

    python benchmarks/startup.py [--repeats 3]

The floor is `python -c "import torch, lightning.pytorch, torch_harmonics"`: what any
run of this stack pays. The debug run's own log gives the breakdown of the rest.
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


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def log_phases(train_log: Path) -> dict[str, float]:
    """Seconds between the first and each later milestone of train.log."""
    stamps = []
    for line in train_log.read_text().splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamps.append((datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f"), match[3]))
    start = stamps[0][0]
    return {message[:60]: round((stamp - start).total_seconds(), 2) for stamp, message in stamps}


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
            floors.append(timed(FLOOR, workdir))
            runs.append(timed(command, workdir))
            print(f"repeat {repeat}: floor {floors[-1]:.2f} s, debug run {runs[-1]:.2f} s", file=sys.stderr)
        phases = log_phases(workdir / "outputs" / "debug" / "train.log")
    floor, run = statistics.median(floors), statistics.median(runs)
    print(json.dumps({"import_floor_s": floor, "debug_run_s": run, "ratio": run / floor, "train_log_phases_s": phases}))


if __name__ == "__main__":
    main()
