"""Peak resident memory of generating a data file, against ``data.num_examples``.

Generation streams each split to the HDF5 file chunk by chunk and accumulates the training statistics and the linear
emulator's fit as it goes, so its peak memory should not grow with the number of training examples. Each size is
generated in a fresh process (a process's peak cannot be reset) that reports its peak resident set (VmHWM, else
ru_maxrss) and its resident set after the imports. The validation and test splits are kept small and the same for
every size (``--val-examples``, ``--test-examples``): only the training split grows.

    python benchmarks/data_memory.py [--data 128x256] [--examples 128 1024] [--device cpu]

Progress goes to stderr; the last stdout line is one JSON object. 1024 examples of 128x256 take about ten minutes on
two CPU cores.
"""

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # also runs as `python benchmarks/data_memory.py`


def resident_mb(field: str) -> float:
    """``field`` of /proc/self/status (VmRSS, VmHWM) in MiB; where there is none, the peak from getrusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def generate_once(spec_json: str, device: str, threads: int) -> dict:
    """Generate the data of ``spec_json`` into a temporary folder: this process's figures."""
    import torch

    from data.generate import DataSpec, ensure_cached

    torch.set_num_threads(threads)
    spec = DataSpec(**json.loads(spec_json))
    after_imports = resident_mb("VmRSS")
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        path = ensure_cached(spec, root, device)
        seconds = time.perf_counter() - started
        file_mb = path.stat().st_size / 2**20
    return {
        "num_examples": spec.num_examples,
        "peak_rss_mb": round(resident_mb("VmHWM"), 1),
        "rss_after_imports_mb": round(after_imports, 1),
        "train_split_mb": round(4 * math.prod(spec.split_shape("train")) / 2**20, 1),  # float32, as the file holds it
        "file_mb": round(file_mb, 1),
        "generate_s": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="128x256", help="data preset")
    parser.add_argument("--examples", type=int, nargs="+", default=[128, 1024], help="data.num_examples to compare")
    parser.add_argument("--val-examples", type=int, default=16, help="data.num_val_examples, the same for every size")
    parser.add_argument("--test-examples", type=int, default=8, help="data.num_test_examples, the same for every size")
    parser.add_argument("--device", default="cpu", help="data.device")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: the DataSpec to generate, as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(generate_once(args.one, args.device, args.threads)))
        return

    from benchmarks.common import data_spec

    base = data_spec([f"data={args.data}"])
    results = {
        "data": args.data,
        "device": args.device,
        "cores": len(os.sched_getaffinity(0)),
        "threads": args.threads,
        "num_val_examples": args.val_examples,
        "num_test_examples": args.test_examples,
        "val_rollout_steps": base.val_rollout_steps,
        "rollout_steps": base.rollout_steps,
        "runs": [],
    }
    for examples in args.examples:
        spec = dataclasses.replace(
            base, num_examples=examples, num_val_examples=args.val_examples, num_test_examples=args.test_examples
        )
        print(f"generating {args.data} with data.num_examples={examples} in a fresh process", file=sys.stderr)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                *("--device", args.device, "--threads", str(args.threads)),
                *("--one", json.dumps(dataclasses.asdict(spec))),
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        run = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(run), file=sys.stderr)
        results["runs"].append(run)
    by_size = sorted(results["runs"], key=lambda run: run["num_examples"])
    results["peak_ratio_largest_to_smallest"] = round(by_size[-1]["peak_rss_mb"] / by_size[0]["peak_rss_mb"], 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
