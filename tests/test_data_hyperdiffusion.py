"""data.hyperdiffusion: torch-harmonics' damping tied to each grid, or one reference's damping on every grid, and
initial states drawn in the reference's band; both in the cache key, the default's key as before."""

import dataclasses
import json
import math

import pytest
import torch
from hydra.utils import instantiate
from torch_harmonics.examples import ShallowWaterSolver

from data.generate import make_solver
from data.solver import HYPERDIFFUSION_EFOLD_SECONDS, BatchedShallowWaterSolver, hyperdiffusion
from tests.conftest import compose_config


def preset_spec(*overrides: str):
    """The data spec that `python train.py <overrides>` asks for."""
    return instantiate(compose_config(list(overrides)).data).spec


def rate_per_second(solver: BatchedShallowWaterSolver) -> torch.Tensor:
    """The damping rate of each degree l >= 1 (order 0) that the solver's per-step factor applies, shape (lmax - 1,)."""
    return -torch.log(solver.hyperdiff[1:, 0].double()) / solver.dt


@pytest.mark.parametrize(("nlat", "nlon", "steps"), [(32, 64, 12), (64, 128, 24), (128, 256, 48)])
def test_grid_rule_is_torch_harmonics_own_hyperdiffusion_bit_for_bit(nlat, nlon, steps):
    lmax = math.ceil(nlat / 3)
    options = {"lmax": lmax, "mmax": lmax, "grid": "equiangular"}
    own = ShallowWaterSolver(nlat, nlon, 3600.0 / steps, **options).hyperdiff  # (lmax, mmax) float64
    assert torch.equal(BatchedShallowWaterSolver(nlat, nlon, 3600.0 / steps, **options).hyperdiff, own)
    solver = BatchedShallowWaterSolver(nlat, nlon, 3600.0 / steps, hyperdiffusion_lmax=lmax, **options)
    assert torch.equal(solver.hyperdiff, own)
    assert own[-1, 0] < 1, "the grid's highest degree is damped"


def test_fixed_rule_at_its_reference_grid_is_the_grid_rule_and_its_file():
    default, fixed = preset_spec(), preset_spec("data.hyperdiffusion=fixed", "data.hyperdiffusion_reference=32x64")
    assert fixed == default and fixed.cache_path("cache") == default.cache_path("cache")
    assert torch.equal(make_solver(fixed).hyperdiff, make_solver(default).hyperdiff)
    key = json.loads(default.as_json())
    assert "hyperdiffusion_lmax" not in key and "initial_lmax" not in key, "the default data keeps format 5's file"


def float64_solver(*overrides: str) -> BatchedShallowWaterSolver:
    """The solver of the data that ``overrides`` ask for, in float64: a factor near 1 keeps its rate's digits."""
    return make_solver(dataclasses.replace(preset_spec(*overrides), dtype="float64"))


def test_fixed_rule_damps_a_finer_grid_at_the_reference_rate_per_degree():
    coarse = float64_solver()
    fine = float64_solver("data=64x128", "data.hyperdiffusion=fixed")
    own = float64_solver("data=64x128")
    assert fine.dt == coarse.dt / 2 and fine.lmax == 22 and coarse.lmax == 11
    reference = rate_per_second(coarse)  # degrees 1..10
    torch.testing.assert_close(rate_per_second(fine)[: len(reference)], reference, rtol=1e-6, atol=0)
    assert torch.exp(-3600 * reference[-1]) == pytest.approx(math.exp(-0.5), rel=1e-12), "l = 10 e-folds in 2 h"
    # beyond the reference's band, the same formula: (l(l+1) / (10 x 11))^4 per 2 h
    degrees = torch.arange(11, 22, dtype=torch.float64)
    expected = (degrees * (degrees + 1) / 110) ** 4 / HYPERDIFFUSION_EFOLD_SECONDS
    torch.testing.assert_close(rate_per_second(fine)[10:], expected, rtol=1e-6, atol=0)
    assert (rate_per_second(own)[:10] < reference / 100).all(), "the grid rule barely damps those degrees at 64x128"


def test_hyperdiffusion_has_one_formula_for_every_band():
    solver = BatchedShallowWaterSolver(64, 128, 150.0, lmax=22, mmax=22)
    for band in (11, 22, 43):
        factor = hyperdiffusion(solver.lap, solver.dt, band, solver.radius)[1:, 0]
        degrees = torch.arange(1, 22, dtype=torch.float64)
        rate = (degrees * (degrees + 1) / ((band - 1) * band)) ** 4 / HYPERDIFFUSION_EFOLD_SECONDS
        torch.testing.assert_close(factor, torch.exp(-solver.dt * rate), rtol=1e-12, atol=0)


def test_fixed_rule_draws_a_finer_grids_initial_states_as_the_reference_grid_does():
    coarse_spec = preset_spec()
    fine_spec = preset_spec("data=64x128", "data.hyperdiffusion=fixed")
    assert (fine_spec.hyperdiffusion_lmax, fine_spec.initial_lmax) == (11, 11)
    assert fine_spec.cache_path("cache") != preset_spec("data=64x128").cache_path("cache")
    draw = [
        make_solver(spec).random_initial_condition(3, spec.mach, torch.Generator().manual_seed(2), spec.amplitude, band)
        for spec, band in ((coarse_spec, None), (fine_spec, fine_spec.initial_lmax))
    ]
    assert draw[1].shape == (3, 3, 22, 22)
    assert torch.equal(draw[1][..., :11, :11], draw[0]), "the very coefficients of the reference grid's draw"
    assert not draw[1][..., 11:, :].any() and not draw[1][..., 11:].any()


def test_initial_band_and_reference_are_part_of_the_key():
    fixed = preset_spec("data=64x128", "data.hyperdiffusion=fixed")
    wider = preset_spec("data=64x128", "data.hyperdiffusion=fixed", "data.initial_lmax=22")
    assert (wider.hyperdiffusion_lmax, wider.initial_lmax) == (11, None), "a band equal to data.lmax is the default's"
    other = preset_spec("data=64x128", "data.hyperdiffusion=fixed", "data.hyperdiffusion_reference=128x256")
    assert (other.hyperdiffusion_lmax, other.initial_lmax) == (43, None), "the initial band stays within data.lmax"
    paths = {spec.cache_path("cache") for spec in (fixed, wider, other, preset_spec("data=64x128"))}
    assert len(paths) == 4
