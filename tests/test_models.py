"""The networks the model configs build: band-limited to the data, and told the latitude."""

import pytest
import torch
from torch_harmonics.examples import ShallowWaterSolver

from models.latitude import LatitudeInput, sin_latitude
from runs.build import build_module, count_parameters
from tests.conftest import REPO, compose_config

MODELS = sorted(path.stem for path in (REPO / "config" / "model").glob("*.yaml"))


@pytest.mark.parametrize(("data", "lmax"), [("32x64", 11), ("64x128", 22), ("128x256", 43)])
def test_spectral_modes_follow_the_data_band(data, lmax):
    """The solver keeps degrees and orders below data.lmax = ceil(nlat / 3); the SFNO keeps exactly those, and the
    FNO the same zonal wavenumbers (neuraloperator keeps n_modes // 2 of each sign)."""
    sfno = compose_config([f"data={data}", "model=sfno"])
    assert sfno.data.lmax == lmax
    assert list(sfno.model.net.n_modes) == [lmax, 2 * lmax]
    assert sfno.model.net.conv_module.sht_grids == sfno.data.grid
    for model in ("fno", "fno_small"):
        fno = compose_config([f"data={data}", f"model={model}"])
        assert list(fno.model.net.n_modes) == [2 * lmax, 2 * lmax], model
    assert list(compose_config([f"data={data}", "model=sfno_wide"]).model.net.n_modes) == [lmax, 2 * lmax]


def test_sht_grid_follows_the_data_grid():
    cfg = compose_config(["model=sfno", "data.grid=legendre-gauss"])
    assert cfg.model.net.conv_module.sht_grids == "legendre-gauss"


def test_sin_latitude_is_the_solvers_coriolis_shape():
    solver = ShallowWaterSolver(32, 64, 300.0, lmax=11, mmax=11, grid="equiangular")
    coriolis = solver.coriolis.reshape(-1).float()
    torch.testing.assert_close(sin_latitude(32, "equiangular"), coriolis / (2 * solver.omega), rtol=0, atol=1e-6)
    assert sin_latitude(32, "equiangular")[0] > 0.99, "north first, as the data"


@pytest.mark.parametrize("model", MODELS)
def test_every_model_sees_the_latitude_and_no_longitude(model):
    module = build_module(compose_config(["model.width=8", "model.layers=1", f"model={model}"]))
    assert isinstance(module.net, LatitudeInput)
    inner = module.net.net
    seen = []
    inner.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    state = torch.randn(2, 3, 32, 64)
    module(state)
    (inputs,) = seen
    assert inputs.shape == (2, 4, 32, 64)
    torch.testing.assert_close(inputs[:, :3], state)
    torch.testing.assert_close(inputs[0, 3], sin_latitude(32, "equiangular")[:, None].expand(32, 64))
    # no grid embedding: neuraloperator's adds a longitude sawtooth, torch-harmonics' is off
    assert getattr(inner, "positional_embedding", None) is None
    assert isinstance(getattr(inner, "pos_embed", torch.nn.Identity()), torch.nn.Identity)
    # rotating the state about the axis rotates the SFNO's prediction: the longitude is not an input
    if model == "sfno":
        shifted = module(state.roll(16, dims=-1))
        torch.testing.assert_close(shifted, module(state).roll(16, dims=-1), rtol=1e-4, atol=1e-4)


def parameters(model: str) -> int:
    return count_parameters(build_module(compose_config(["data=32x64", f"model={model}"])).net)


def test_the_size_controls_match_the_other_transforms_size_at_32x64():
    """fno_small is the FNO at the SFNO's size, sfno_wide the SFNO at the FNO's: within 3% (103,459 and 2,176,035)."""
    sfno, fno = parameters("sfno"), parameters("fno")
    assert (sfno, fno) == (103_459, 2_176_035)
    assert parameters("fno_small") == pytest.approx(sfno, rel=0.03)
    assert parameters("sfno_wide") == pytest.approx(fno, rel=0.03)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_takes_a_gradient_step_through_all_its_parameters(model):
    module = build_module(compose_config(["model.width=8", "model.layers=1", f"model={model}"]))
    module(torch.randn(2, 3, 32, 64)).square().mean().backward()
    missing = [name for name, parameter in module.named_parameters() if parameter.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(parameter.grad).all() for parameter in module.parameters())
