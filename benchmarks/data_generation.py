"""How fast our batched generator makes training pairs compared with torch-harmonics' PdeDataset, and what a cached
rerun costs.

PdeDataset integrates one (input, target one hour later) pair per ``__getitem__`` from a fresh random state (mach 0.2,
lmax = ceil(nlat / 3), float32). The like-for-like figure of ours generates the same pairs with the same solver steps
(spinup_steps=0, two states per trajectory); the default figure adds the spin-up hours our data sets use. The cached
figure is what a second run spends on ``ensure_cached`` + ``ShallowWaterDataModule.setup`` for a preset-sized file.

    python benchmarks/data_generation.py [--resolutions 32x64 64x128] [--threads N] ...

Progress goes to stderr; the last stdout line is one JSON object.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch
import torch_harmonics
from torch_harmonics.examples import PdeDataset
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # also runs as `python benchmarks/data_generation.py` (make bench)
from benchmarks.common import data_spec  # noqa: E402
from data.datamodule import ShallowWaterDataModule  # noqa: E402
from data.generate import SECONDS_PER_STEP, DataSpec, ensure_cached, generate_trajectories  # noqa: E402


def preset_spec(resolution: str, **changes) -> DataSpec:
    """The data preset ``config/data/<resolution>.yaml`` as a DataSpec, with ``changes``."""
    return dataclasses.replace(data_spec([f"data={resolution}"]), **changes)


def pde_dataset_rate(spec: DataSpec, samples: int) -> float:
    """Pairs per second from PdeDataset, not counting its constructor (which draws one sample to normalise)."""
    dataset = PdeDataset(
        dt=SECONDS_PER_STEP, nsteps=spec.solver_steps, dims=(spec.nlat, spec.nlon), num_examples=samples
    )
    started = time.perf_counter()
    for index in tqdm(range(samples), desc=f"PdeDataset {spec.nlat}x{spec.nlon}", leave=False):
        dataset[index]
    return samples / (time.perf_counter() - started)


def our_rate(spec: DataSpec, samples: int) -> float:
    """Pairs of states (trajectories of two) per second from our generator, solver set-up included."""
    started = time.perf_counter()
    generate_trajectories(spec, samples, 2, seed=0)
    return samples / (time.perf_counter() - started)


def cached_rerun(spec: DataSpec, repeats: int) -> dict:
    """Generate ``spec`` once in a temporary folder, then time a rerun's data preparation ``repeats`` times."""
    fields = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
    del fields["dtype"]
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        path = ensure_cached(spec, root)
        generate_s = time.perf_counter() - started
        with h5py.File(path) as file:
            in_memory = [file[split].size * 4 / 2**20 for split in ("train", "val", "test")]
        prepare_s = []
        for _ in range(repeats):
            started = time.perf_counter()
            ensure_cached(spec, root)
            ShallowWaterDataModule(**fields, data_root=root, batch_size=16).setup()
            prepare_s.append(time.perf_counter() - started)
        file_mb = path.stat().st_size / 2**20
    return {
        "generate_s": round(generate_s, 1),
        "file_mb": round(file_mb, 1),
        "in_memory_mb": round(sum(in_memory), 1),
        "prepare_s": [round(seconds, 3) for seconds in prepare_s],
        "prepare_s_median": round(statistics.median(prepare_s), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", nargs="+", default=["32x64", "64x128"], help="data presets to compare")
    parser.add_argument("--pde-samples", type=int, default=32, help="PdeDataset pairs timed per resolution")
    parser.add_argument("--our-samples", type=int, default=256, help="samples of ours timed per resolution")
    parser.add_argument("--cached-resolution", default="64x128", help="preset of the cached rerun")
    parser.add_argument("--cached-examples", type=int, default=1024, help="training examples of the cached file")
    parser.add_argument("--repeats", type=int, default=3, help="timed cached reruns")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = {
        "threads": args.threads,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "torch_harmonics": torch_harmonics.__version__,
        "samples_per_s": {},
    }
    for resolution in args.resolutions:
        pairs = preset_spec(resolution, spinup_steps=0)
        spun_up = preset_spec(resolution)
        print(f"{resolution}: {pairs.solver_steps} solver steps per hour", file=sys.stderr)
        theirs = pde_dataset_rate(pairs, args.pde_samples)
        ours = our_rate(pairs, args.our_samples)
        ours_spun_up = our_rate(spun_up, args.our_samples)
        results["samples_per_s"][resolution] = {
            "solver_steps_per_hour": pairs.solver_steps,
            "pde_dataset": round(theirs, 2),
            "ours_pairs": round(ours, 2),
            "speedup": round(ours / theirs, 2),
            "ours_with_spinup": round(ours_spun_up, 2),
            "spinup_hours": spun_up.spinup_steps,
        }
        print(f"{resolution}: {json.dumps(results['samples_per_s'][resolution])}", file=sys.stderr)

    # Spin-up changes what the file holds, not its size: skipping it makes the file faster to create.
    cached = preset_spec(args.cached_resolution, spinup_steps=0, num_examples=args.cached_examples)
    print(f"cached rerun: generating {args.cached_resolution} with {cached.num_examples} examples", file=sys.stderr)
    results["cached_rerun"] = {
        "resolution": args.cached_resolution,
        "num_examples": cached.num_examples,
        "num_val_examples": cached.num_val_examples,
        "num_test_examples": cached.num_test_examples,
        **cached_rerun(cached, args.repeats),
    }
    # Other processes on the cores slow these figures down, two intra-op threads far more than one.
    results["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
