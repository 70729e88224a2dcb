"""Self-describing checkpoints: plain `_target_` dicts in, the trained module out of `load_from_checkpoint(path)`."""

import functools

import pytest
import torch
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import OmegaConf
from torch import nn

from models import NeuralOperatorModule
from models.instantiate import instantiate
from models.latitude import LatitudeInput
from runs.build import build_module
from tests.conftest import REPO, TINY, compose_config, fit_tiny_module

SFNO = {
    "_target_": "neuralop.models.SFNO",
    "n_modes": [4, 8],
    "in_channels": 4,  # the fields and sin(latitude), which the module adds (models/latitude.py)
    "out_channels": 3,
    "hidden_channels": 8,
    "n_layers": 1,
}


def test_instantiate_builds_nested_targets_lists_positional_arguments_and_partials():
    layers = {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 3}
    built = instantiate(
        {
            "net": {"_target_": "torch.nn.Sequential", "_args_": [layers, {"_target_": "torch.nn.ReLU"}]},
            "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5},
            "sizes": [{"_target_": "math.sqrt", "_args_": [4]}, 3],
            "keys": {"_target_": "collections.OrderedDict.fromkeys", "_args_": [["a"]]},
        }
    )
    assert [type(layer) for layer in built["net"]] == [nn.Linear, nn.ReLU]
    assert isinstance(built["optimizer"], functools.partial)
    assert built["optimizer"](built["net"].parameters()).defaults["lr"] == 0.5
    assert built["sizes"] == [2.0, 3]
    assert list(built["keys"]) == ["a"]


def test_instantiate_names_what_it_cannot_build():
    with pytest.raises(ValueError, match=r"\['_recursive_'\] not supported"):
        instantiate({"_target_": "torch.nn.ReLU", "_recursive_": False})
    with pytest.raises(ImportError, match=r"torch.nn has no 'NoSuchLayer'"):
        instantiate({"_target_": "torch.nn.NoSuchLayer"})
    with pytest.raises(ImportError, match=r"no module 'no_such_package'"):
        instantiate({"_target_": "no_such_package.Net"})


@pytest.mark.parametrize("model", ["sfno", "fno", "sfno_th"])
def test_instantiate_builds_every_model_config_as_hydra_does(model):
    net = compose_config([*TINY, f"model={model}"]).model.net
    torch.manual_seed(0)
    expected = hydra_instantiate(net)
    torch.manual_seed(0)
    built = instantiate(OmegaConf.to_container(net, resolve=True))
    assert type(built) is type(expected)
    # neuraloperator's state dict also holds its constructor arguments, under _metadata: the same arguments (a
    # partial, such as the SFNO's conv_module, compared by what it calls with which keywords).
    built_state, expected_state = built.state_dict(), expected.state_dict()
    built_arguments, expected_arguments = built_state.pop("_metadata", {}), expected_state.pop("_metadata", {})
    assert built_arguments.keys() == expected_arguments.keys()
    for key, value in built_arguments.items():
        other = expected_arguments[key]
        if hasattr(value, "keywords"):
            assert (value.func, value.keywords) == (other.func, other.keywords), key
        else:
            assert value == other, key
    torch.testing.assert_close(built_state, expected_state, rtol=0, atol=0)


def test_compile_setting_compiles_the_network_in_place():
    module = build_module(compose_config([*TINY, "training.compile=True"]))
    assert module.net._compiled_call_impl is not None
    assert not any("_orig_mod" in name for name in module.state_dict()), "parameter names of an eager run"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The best checkpoint of a tiny fit of a nested network, with the data's normalisation set; and the module."""
    tmp_path = tmp_path_factory.mktemp("fit")
    module, trainer = fit_tiny_module(SFNO, tmp_path)
    module.mean.copy_(torch.tensor([3e5, 0.0, 0.0]).view(3, 1, 1))
    module.std.copy_(torch.tensor([2e2, 1e-5, 1e-6]).view(3, 1, 1))
    path = trainer.checkpoint_callback.best_model_path
    trainer.save_checkpoint(path)
    return path, module


def test_checkpoint_loads_with_no_other_argument_and_with_weights_only(checkpoint):
    path, trained = checkpoint
    saved = torch.load(path, weights_only=True)
    assert saved["hyper_parameters"]["net"]["_target_"] == "neuralop.models.SFNO"
    assert saved["hyper_parameters"]["channels"] == ["geopotential", "vorticity", "divergence"]
    model = NeuralOperatorModule.load_from_checkpoint(path)
    assert isinstance(model.net, LatitudeInput) and type(model.net.net).__name__ == "SFNO"
    assert model.channels == trained.channels
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in saved["state_dict"].items())
    assert model.std.equal(trained.std), "the data's normalisation travels with the checkpoint"
    spectral = [layer for layer in model.modules() if type(layer).__name__ == "SphericalConv"]
    assert spectral and all(hasattr(layer.forward, "__wrapped__") for layer in spectral), "transforms in float32"
    optimizer = model.optimizer_factory(model.parameters())
    assert isinstance(optimizer, torch.optim.Adam)
    scheduler = model.scheduler_factory(optimizer, total_steps=500)  # a warm-up of 2%: 10 steps
    assert scheduler.get_last_lr() == pytest.approx([1e-4]), "lr / 10 at the first of 10 warm-up steps"


def test_readme_lines_load_a_checkpoint_and_roll_it_out(checkpoint):
    path, trained = checkpoint
    readme = (REPO / "README.md").read_text().split("### Using a trained model", 1)[1]
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) == 3
    state = trained.to_physical(torch.randn(2, 3, 8, 16))
    namespace = {"checkpoint": path, "state": state}
    exec(code, namespace)
    with torch.no_grad():
        expected = trained.to_physical(trained.eval().rollout((state - trained.mean) / trained.std, steps=20))
    assert namespace["forecast"].shape == (2, 20, 3, 8, 16)
    torch.testing.assert_close(namespace["forecast"], expected)
