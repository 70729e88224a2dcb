"""How much of the test window's evolution is the solver's hyperdiffusion: energy removed per degree against the
energy's change, and the share of a one-hour step that is damping.

For each case (a preset and a data.hyperdiffusion rule), test-like trajectories (the test split's seed, its initial
band, the spin-up) are integrated in float64 through the test window (hours 4 to 24 by default), every solver step
kept. Hyperdiffusion multiplies vorticity and divergence by a factor f_l per step and degree l (data/solver.py), so a
step removes (1/f_l^2 - 1) times the kinetic energy it leaves at degree l: summed over the window's steps, that is
the energy the damping took, exactly. Against it: the kinetic energy's net change at each degree over the window, and
its mean. Kinetic energy per degree: sum over orders of (|vorticity|^2 + |divergence|^2) / (l(l+1)), orthonormal
harmonics, both signs of each order (a constant factor apart from the integral of |u|^2 / 2 over the sphere).

Second, what a model's one-hour step sees: from every hourly state of the window, one hour with and without the
damping; the damping's share of the step is |step - undamped step| / |step| per channel (spectral L2 over all
degrees), averaged over the start states.

    python benchmarks/hyperdiffusion.py [--trajectories 16] [--cases 32x64:grid 64x128:fixed 64x128:grid]

Progress goes to stderr; the last stdout line is one JSON object with the machine.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as `python benchmarks/hyperdiffusion.py`
from benchmarks.common import data_spec, machine  # noqa: E402
from data import CHANNELS  # noqa: E402
from data.generate import DataSpec, make_solver  # noqa: E402
from data.solver import BatchedShallowWaterSolver  # noqa: E402


def kinetic_energy(states: torch.Tensor) -> torch.Tensor:
    """Kinetic energy per degree of spectral states (..., 3, lmax, mmax) complex -> (..., lmax) float64 (degree 0,
    which holds no wind, is 0)."""
    lmax, mmax = states.shape[-2:]
    degrees = torch.arange(lmax, dtype=torch.float64)
    orders = torch.full((mmax,), 2.0, dtype=torch.float64)
    orders[0] = 1.0  # a real field's order m > 0 stands for m and -m
    power = (states[..., 1:, :, :].abs() ** 2 * orders).sum(dim=(-3, -1))  # vorticity and divergence, over orders
    inverse = torch.where(degrees > 0, 1 / (degrees * (degrees + 1)).clamp(min=1), torch.zeros_like(degrees))
    return power * inverse


def window(spec: DataSpec, solver: BatchedShallowWaterSolver, trajectories: int) -> torch.Tensor:
    """The test-like trajectories' spectral states at every solver step of the test window, its first hour's state
    first: (trajectories, window steps + 1, 3, lmax, mmax), float64."""
    generator = torch.Generator().manual_seed(spec.seeds["test"])
    initial = solver.random_initial_condition(trajectories, spec.mach, generator, spec.amplitude, spec.initial_lmax)
    steps = (spec.spinup_steps + spec.rollout_steps) * spec.solver_steps
    with torch.inference_mode():
        states = torch.cat([initial[:, None], solver.integrate(initial, steps, 1)], dim=1)
    return states[:, spec.spinup_steps * spec.solver_steps :]


def energy_budget(spec: DataSpec, solver: BatchedShallowWaterSolver, states: torch.Tensor) -> dict:
    """Per degree: the mean kinetic energy's share, the energy removed by the damping per hour and its net change per
    hour, each over the degree's mean energy; and the totals over the window, over the first state's energy."""
    energy = kinetic_energy(states)  # (trajectories, steps + 1, lmax)
    factor = solver.hyperdiff[:, 0].double()  # (lmax,): the same for every order
    removed = (energy[:, 1:] * (1 / factor**2 - 1)).sum(dim=1)  # each step's damping, from the energy it left
    hours = spec.rollout_steps
    mean = energy.mean(dim=(0, 1))
    net = (energy[:, -1] - energy[:, 0]).mean(dim=0)
    first = energy[:, 0].sum(dim=-1).mean()
    return {
        "energy_share": (mean / mean.sum()).tolist(),
        "removed_per_hour": (removed.mean(dim=0) / hours / mean).tolist(),
        "net_change_per_hour": (net / hours / mean).tolist(),
        "removed_total": float(removed.sum(dim=-1).mean() / first),
        "net_change_total": float(net.sum() / first),
    }


def one_hour_share(spec: DataSpec, solver: BatchedShallowWaterSolver, states: torch.Tensor) -> dict:
    """The damping's share of one-hour steps from every hourly state of the window, per channel."""
    starts = states[:, :: spec.solver_steps][:, :-1].reshape(-1, *states.shape[2:])  # (trajectories x hours, ...)
    undamped = make_solver(dataclasses.replace(spec, dtype="float64"))
    undamped.packed_hyperdiff.fill_(1.0)
    with torch.inference_mode():
        damped_step = solver.integrate(starts, spec.solver_steps, spec.solver_steps)[:, -1] - starts
        free_step = undamped.integrate(starts, spec.solver_steps, spec.solver_steps)[:, -1] - starts
    share = (damped_step - free_step).abs().norm(dim=(-2, -1)) / damped_step.abs().norm(dim=(-2, -1))
    return dict(zip(CHANNELS, share.mean(dim=0).tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=16)
    parser.add_argument("--cases", nargs="+", default=["32x64:grid", "64x128:fixed", "64x128:grid"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": machine(), "trajectories": args.trajectories, "cases": []}
    for case in args.cases:
        preset, rule = case.split(":")
        started = time.perf_counter()
        spec = data_spec([f"data={preset}", f"data.hyperdiffusion={rule}"])
        solver = make_solver(dataclasses.replace(spec, dtype="float64"))
        states = window(spec, solver, args.trajectories)
        row = {
            "preset": preset,
            "hyperdiffusion": rule,
            "hyperdiffusion_lmax": spec.hyperdiffusion_lmax or spec.lmax,
            "initial_lmax": spec.initial_lmax or spec.lmax,
            "window_hours": [spec.spinup_steps, spec.spinup_steps + spec.rollout_steps],
            "damping_per_hour": (1 - solver.hyperdiff[:, 0].double() ** (2 * spec.solver_steps)).tolist(),
            **energy_budget(spec, solver, states),
            "one_hour_share": one_hour_share(spec, solver, states),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps({key: row[key] for key in ("preset", "hyperdiffusion", "seconds")}), file=sys.stderr)
        print_table(row)
        results["cases"].append(row)
    print(json.dumps(results))


def print_table(row: dict) -> None:
    """The per-degree figures of one case, readable, to stderr."""
    print(
        f"{row['preset']} {row['hyperdiffusion']}: kinetic energy removed over the window "
        f"{row['removed_total']:.3f}, net change {row['net_change_total']:+.3f} (of the first state's); one-hour "
        f"share of damping {row['one_hour_share']}",
        file=sys.stderr,
    )
    print("   l  energy share  damping/h (energy)  removed/h  net/h", file=sys.stderr)
    for degree in range(1, len(row["energy_share"])):
        print(
            f"  {degree:2d}  {row['energy_share'][degree]:12.4f}  {row['damping_per_hour'][degree]:18.4f}"
            f"  {row['removed_per_hour'][degree]:9.4f}  {row['net_change_per_hour'][degree]:+.4f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
