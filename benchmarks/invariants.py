"""What the solver itself does to the shallow-water invariants at each data preset: the energy and potential enstrophy
its hyperdiffusion removes per day, and how far its mass moves (`sphere.diagnostics.Invariants`).

For each preset, a few trajectories of the preset's default data (its amplitude, spin-up, band and step) are
integrated for --hours one-hour steps after the spin-up, as the data files hold them (float32 grid states), and the
invariants are computed at every hour. Losses per day are 1 - (value at the end / value at hour 0)^(24 / hours), mean
and range over the trajectories. Total energy includes the potential energy of the mean geopotential, mass^2 / 2,
which the solver conserves with the mass: the "available" energy, energy - mass^2 / 2 (kinetic plus the potential
energy of the geopotential's anomaly), is what the hyperdiffusion can remove, so its relative loss is larger.

    python benchmarks/invariants.py [--presets 32x64 64x128 128x256] [--trajectories 4] [--hours 24]

256x512 is not in the default presets: its trajectories take about two minutes each on a 2-core CPU (one at a time);
`--presets 256x512 --trajectories 2` measures it.

Progress goes to stderr; the last stdout line is one JSON object.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as `python benchmarks/invariants.py`
from benchmarks.common import data_spec, machine  # noqa: E402
from data.generate import generate_trajectories  # noqa: E402
from evaluation.physics import relative_drift  # noqa: E402
from sphere import INVARIANTS  # noqa: E402
from sphere.diagnostics import Invariants  # noqa: E402


def loss_per_day(values: np.ndarray, hours: int) -> dict:
    """values (trajectory, hour 0..hours) -> the relative loss per day, mean and range over the trajectories."""
    per_day = 1 - (values[:, -1] / values[:, 0]) ** (24 / hours)
    return {"mean": float(per_day.mean()), "min": float(per_day.min()), "max": float(per_day.max())}


def measure(preset: str, trajectories: int, hours: int) -> dict:
    spec = data_spec([f"data={preset}", f"eval.rollout_steps={hours}"])
    started = time.perf_counter()
    states = generate_trajectories(spec, trajectories, hours + 1, seed=spec.seeds["train"])  # (traj, hour, 3, ...)
    integrate_s = time.perf_counter() - started
    invariants = Invariants(spec.nlat, spec.nlon, spec.grid, spec.lmax)(torch.from_numpy(states)).numpy()
    mass, energy, enstrophy = (invariants[..., INVARIANTS.index(name)] for name in INVARIANTS)
    return {
        "nlat": spec.nlat,
        "nlon": spec.nlon,
        "lmax": spec.lmax,
        "solver_steps_per_hour": spec.solver_steps,
        "amplitude": spec.amplitude,
        "spinup_hours": spec.spinup_steps,
        "integrate_s": round(integrate_s, 1),
        "max_abs_mass_drift": float(np.abs(relative_drift(mass)).max()),
        "energy_loss_per_day": loss_per_day(energy, hours),
        "available_energy_loss_per_day": loss_per_day(energy - mass**2 / 2, hours),
        "potential_enstrophy_loss_per_day": loss_per_day(enstrophy, hours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["32x64", "64x128", "128x256"])
    parser.add_argument("--trajectories", type=int, default=4, help="trajectories per preset")
    parser.add_argument("--hours", type=int, default=24, help="one-hour steps after the spin-up")
    args = parser.parse_args()
    results = {"machine": machine(), "trajectories": args.trajectories, "hours": args.hours, "presets": {}}
    for preset in args.presets:
        results["presets"][preset] = measure(preset, args.trajectories, args.hours)
        print(f"{preset}: {json.dumps(results['presets'][preset])}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
