"""How nonlinear the data is at each resolution and data.amplitude, and whether the solver step stays accurate there.

For each preset and amplitude: the linear spectral emulator's validation error (mean relative L2 over the channels)
at 1 h and 20 h (never the test split: data.amplitude is chosen from these figures), fitted on a training split
as generation fits it (0 would mean linear dynamics; the larger, the more a learned model can gain over a
least-squares fit), and the solver's one-hour error against four times finer steps (largest over the channels; the
presets are chosen to keep it under 2%).

    python benchmarks/nonlinearity.py [--presets 32x64 64x128] [--amplitudes 1 3 10 30] [--num-examples 256]

The least-squares fit needs more training pairs than unknowns per order (3 x data.lmax + 1), so --num-examples
should be at least 2 x data.lmax. Progress goes to stderr; the last stdout line is one JSON object.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as `python benchmarks/nonlinearity.py`
from benchmarks.common import data_spec  # noqa: E402
from data.generate import DataSpec, ensure_cached, make_solver  # noqa: E402


def step_error(spec: DataSpec) -> float:
    """The largest per-channel one-hour error of the preset's solver step against four times finer steps."""

    def one_hour(solver_steps: int) -> torch.Tensor:
        solver = make_solver(dataclasses.replace(spec, solver_steps=solver_steps))
        initial = solver.random_initial_condition(1, spec.mach, torch.Generator().manual_seed(0), spec.amplitude)
        with torch.inference_mode():
            return solver.spec2grid(solver.integrate(initial, solver_steps, solver_steps)[:, -1]).double()

    coarse, fine = one_hour(spec.solver_steps), one_hour(4 * spec.solver_steps)
    deviation = fine - fine.mean(dim=(-2, -1), keepdim=True)
    return float(((coarse - fine).norm(dim=(-2, -1)) / deviation.norm(dim=(-2, -1))).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["32x64", "64x128"])
    parser.add_argument("--amplitudes", nargs="+", type=float, default=[1, 3, 10, 30])
    parser.add_argument("--num-examples", type=int, default=256, help="training trajectories of each fit")
    parser.add_argument("--num-val-examples", type=int, default=32)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for preset in args.presets:
            for amplitude in args.amplitudes:
                spec = data_spec(
                    [
                        f"data={preset}",
                        f"data.amplitude={amplitude}",
                        f"data.num_examples={args.num_examples}",
                        f"data.num_val_examples={args.num_val_examples}",
                        "eval.val_rollout_steps=20",
                        "data.num_test_examples=1",
                    ]
                )
                with h5py.File(ensure_cached(spec, root)) as file:
                    linear = np.asarray(file.attrs["linear_emulator_val_rel_l2"]).mean(axis=1)
                row = {
                    "preset": preset,
                    "amplitude": amplitude,
                    "linear_1h": round(float(linear[0]), 4),
                    "linear_20h": round(float(linear[19]), 4),
                    "step_error_1h": round(step_error(spec), 4),
                }
                print(row, file=sys.stderr, flush=True)
                rows.append(row)
                spec.cache_path(root).unlink()
    print(json.dumps({"rows": rows, "num_examples": args.num_examples, "num_val_examples": args.num_val_examples}))


if __name__ == "__main__":
    main()
