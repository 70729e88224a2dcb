"""Bad input stops train.py before any folder, file, data or W&B run exists, with a message naming key and fix."""

import itertools
import os
import re
from pathlib import Path

import pytest

from runs.checks import ConfigError, check_config, devices
from runs.checks.folders import unwritable
from runs.checks.values import CHOICES, INTEGER_MINIMUMS, SWITCHES
from tests.conftest import REPO, TINY, compose_hydra_config, run_train


def fails_before_any_work(tmp_path: Path, args: list[str], log_dir: Path | None = None) -> str:
    """Run train.py as a user would; assert it failed and left nothing behind; return what it printed."""
    log_dir = log_dir or tmp_path / "outputs"
    before = set(tmp_path.iterdir())
    result = run_train([*args, f"paths.log_dir={log_dir}", f"paths.data_root={tmp_path / 'cache'}"], tmp_path, False)
    assert result.returncode != 0
    assert set(tmp_path.iterdir()) == before, "a folder or file appeared"
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Path:
    """A folder nobody may write to; root ignores permission bits, so it falls back to read-only /proc/sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        folder = Path("/proc/sys")
        if os.access(folder, os.W_OK):
            pytest.skip("no folder here is read-only for this user")
    yield folder
    (tmp_path / "read-only").chmod(0o755)


# One subprocess per bad input, as a user would meet it.


def test_unknown_model(tmp_path):
    message = fails_before_any_work(tmp_path, ["model=fnoo"])
    assert "Could not find 'model/fnoo'" in message and "sfno_th" in message


def test_missing_value(tmp_path):
    message = fails_before_any_work(tmp_path, ["data.nlat=???"])
    assert "data.nlat is missing (???): give it a value, e.g. data.nlat=<value>" in message


def test_sizes_must_be_positive(tmp_path):
    """One command with four bad sizes: each is reported, none hides another."""
    overrides = ["batch_size=0", "data.num_examples=0", "training.max_epochs=-1", "training.lr=0"]
    message = fails_before_any_work(tmp_path, overrides)
    for override in overrides:
        key = override.split("=")[0]
        assert f"{override} must be" in message and f"pass {key}=" in message


def test_batch_size_that_does_not_divide_the_effective_batch(tmp_path):
    message = fails_before_any_work(tmp_path, ["batch_size=4", "training.effective_batch_size=6"])
    assert "training.effective_batch_size=6 is not a multiple of batch_size=4 x 1 device(s)" in message
    assert "change batch_size or training.effective_batch_size" in message


@pytest.mark.parametrize(("model", "modes"), [("sfno", "[33,64]"), ("fno", "[8,128]")])
def test_modes_beyond_the_data_resolution(tmp_path, model, modes):
    message = fails_before_any_work(tmp_path, [f"model={model}", f"model.modes={modes}"])
    assert "more modes than the 32x64 data resolves" in message
    assert "pass model.modes=[" in message


def test_torch_harmonics_grid_that_does_not_match_the_data(tmp_path):
    message = fails_before_any_work(tmp_path, ["model=sfno_th", "model.grid=[64,128]"])
    assert "model.grid=[64, 128] does not match the data grid" in message


def test_channels_other_than_the_data(tmp_path):
    message = fails_before_any_work(tmp_path, ["model.channels=4"])
    assert "model.channels=4" in message and "pass model.channels=3" in message


def test_log_dir_below_a_file(tmp_path):
    (tmp_path / "file").write_text("in the way")
    message = fails_before_any_work(tmp_path, [], log_dir=tmp_path / "file" / "outputs")
    assert f"paths.log_dir={tmp_path / 'file' / 'outputs'} cannot be written" in message
    assert "is a file, not a folder: choose another paths.log_dir" in message


def test_log_dir_in_a_read_only_folder(tmp_path, read_only_dir):
    message = fails_before_any_work(tmp_path, [], log_dir=read_only_dir / "outputs")
    assert f"{read_only_dir} is not writable: choose another paths.log_dir" in message


def test_data_root_below_a_file(tmp_path):
    (tmp_path / "file").write_text("in the way")
    message = fails_before_any_work(tmp_path, [f"data.data_root={tmp_path / 'file' / 'cache'}"])
    assert "data.data_root=" in message and "choose another data.data_root" in message


def test_sweep_checks_every_job_before_the_sweep_folder(tmp_path):
    message = fails_before_any_work(tmp_path, ["-m", "batch_size=4,0", "training.effective_batch_size=4"])
    assert "sweep job batch_size=0" in message and "batch_size=0 must be an integer >= 1" in message


def test_sweep_with_an_unknown_option_stops_before_the_sweep_folder(tmp_path):
    message = fails_before_any_work(tmp_path, ["-m", "model=sfno,fnoo"])
    assert "sweep job model=fnoo" in message and "Could not find 'model/fnoo'" in message


# The checks themselves, on composed configs (no subprocess).


def check(overrides: list[str], tmp_path: Path) -> None:
    paths = [f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_root={tmp_path / 'cache'}"]
    check_config(compose_hydra_config([*overrides, *paths]))


MODELS = sorted(path.stem for path in (REPO / "config" / "model").glob("*.yaml"))


@pytest.mark.parametrize(("model", "data"), itertools.product(MODELS, ["32x64", "256x512"]))
def test_shipped_configs_pass(model, data, tmp_path):
    check([f"model={model}", f"data={data}"], tmp_path)
    check([*TINY, f"model={model}", f"data={data}"], tmp_path)
    assert not list(tmp_path.iterdir()), "checking created something"


@pytest.mark.parametrize(("key", "minimum"), INTEGER_MINIMUMS.items())
def test_every_integer_has_a_minimum(key, minimum, tmp_path):
    with pytest.raises(ConfigError, match=rf"{key}={minimum - 1} must be an integer >= {minimum}"):
        check([f"{key}={minimum - 1}"], tmp_path)
    with pytest.raises(ConfigError, match=rf"{key}='many' must be an integer"):
        check([f"{key}=many"], tmp_path)


@pytest.mark.parametrize("key", SWITCHES)
def test_switches_are_true_or_false(key, tmp_path):
    with pytest.raises(ConfigError, match=rf"{key}='yes' must be True or False: pass {key}=True or {key}=False"):
        check([f"{key}=yes"], tmp_path)
    check([f"{key}=True"], tmp_path)


@pytest.mark.parametrize(("key", "values"), CHOICES.items())
def test_choices_are_one_of_their_values(key, values, tmp_path):
    with pytest.raises(ConfigError, match=rf"{key}='fast' must be one of {', '.join(values)}: pass e.g. {key}="):
        check([f"{key}=fast"], tmp_path)
    for value in values:
        check([f"{key}={value}"], tmp_path)


@pytest.mark.parametrize("override", ["training.lr=nan", "training.lr=inf", "data.mach=0"])
def test_rates_must_be_positive_and_finite(override, tmp_path):
    with pytest.raises(ConfigError, match=f"{override.split('=')[0]}=.* must be a positive number"):
        check([override], tmp_path)


def test_eval_rollout_within_the_test_trajectories(tmp_path):
    check(["eval.rollout_steps=100"], tmp_path)  # the training and test trajectories are as long as the rollout asks
    check(["eval.rollout_steps=30", "data.rollout_steps=20"], tmp_path)  # 20-h training, 30-h test trajectories
    message = r"eval.rollout_steps=30 must be an integer from 1 to the test trajectories' 25 hours .*data.test_rollout"
    with pytest.raises(ConfigError, match=message):
        check(["eval.rollout_steps=30", "data.rollout_steps=20", "data.test_rollout_steps=25"], tmp_path)


def test_no_full_training_batch(tmp_path):
    check(["data.num_examples=8"], tmp_path)  # eight trajectories give the epoch's 1024 windows
    with pytest.raises(ConfigError, match=r"data.windows_per_epoch=8 is less than one batch \(batch_size=16"):
        check(["data.windows_per_epoch=8"], tmp_path)


@pytest.mark.parametrize(
    ("model", "modes", "ok"),
    [
        ("sfno", "[32,64]", True),  # the limits on 32x64
        ("sfno", "[33,64]", False),  # degrees >= nlat: aliased, silently
        ("sfno", "[32,66]", False),  # orders beyond the longitude Nyquist (crashes from [*,68])
        ("sfno", "[4,1]", False),  # SFNO keeps n_modes[1] // 2 orders: 0 fails
        ("fno", "[32,64]", True),
        ("fno", "[1,1]", True),
        ("fno", "[64,64]", False),  # the extra weights would never be used
        ("fno", "[8,8,8]", False),
    ],
)
def test_modes_limits(model, modes, ok, tmp_path):
    overrides = [f"model={model}", f"model.modes={modes}"]
    if ok:
        check(overrides, tmp_path)
    else:
        with pytest.raises(ConfigError, match=rf"model.modes=\[{modes[1:-1].replace(',', ', ')}\] (must be two|asks)"):
            check(overrides, tmp_path)


def test_learnable_embedding_needs_scale_factor_one(tmp_path):
    check(["model=sfno_th"], tmp_path)  # the authors' scale_factor=2, with sin(latitude) as an input instead
    check(["model=sfno_th", "model.scale_factor=1", "model.embedding=learnable lat"], tmp_path)
    with pytest.raises(ConfigError, match=r"model.embedding='learnable lat' only works with model.scale_factor=1"):
        check(["model=sfno_th", "model.embedding=learnable lat"], tmp_path)


def test_network_channels_follow_the_data(tmp_path):
    with pytest.raises(ConfigError, match=r"model.inputs=3 must be 4, the data's 3 channels and sin\(latitude\)"):
        check(["model=sfno_th", "model.inputs=3"], tmp_path)


@pytest.mark.parametrize(
    ("model", "override", "key"),
    [
        ("sfno_th", "model.net.in_chans=3", "inputs"),
        ("fno", "model.net.out_channels=4", "channels"),
        ("sfno", "model.net.n_modes=[33,64]", "modes"),
        ("sfno_th", "model.net.img_size=[64,128]", "grid"),
        ("sfno_th", "model.net.pos_embed=learnable lat", "embedding"),
    ],
)
def test_net_keys_overridden_past_the_model_keys(model, override, key, tmp_path):
    """The checks read model-level keys: a net key set in their place is reported, naming the key to set."""
    with pytest.raises(ConfigError, match=rf"model.net takes no \$\{{model.{key}\}}.*set model.{key} instead"):
        check([f"model={model}", override], tmp_path)


def test_a_new_model_following_the_contract_is_checked(tmp_path):
    """A network with argument names the checks have never heard of, taking the keys config/model_globals.yaml names."""
    net = ["fields_in=${model.inputs}", "fields_out=${model.channels}", "kept_modes=${model.modes}"]
    new_model = ["model=fno", "model.net=null", "+model.net._target_=torch.nn.Identity"]
    new_model += [f"+model.net.{argument}" for argument in net]
    check([*new_model, "model.modes=[8,8]"], tmp_path)
    with pytest.raises(ConfigError, match=r"model.modes=\[40, 8\] asks the planar network for more modes"):
        check([*new_model, "model.modes=[40,8]"], tmp_path)
    with pytest.raises(ConfigError, match=r"model.net takes no \$\{model.inputs\}"):
        check([*new_model[:-3], *new_model[-2:]], tmp_path)


def test_data_device_cuda_needs_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # every GPU hidden, on any machine
    assert not devices.cuda_gpu_visible()
    with pytest.raises(ConfigError, match=r"data.device=cuda, but .* pass data.device=auto .* or data.device=cpu"):
        check(["data.device=cuda"], tmp_path)
    check(["data.device=cpu"], tmp_path)
    check(["data.device=auto"], tmp_path)
    monkeypatch.setattr(devices, "cuda_gpu_visible", lambda: True)
    check(["data.device=cuda"], tmp_path)
    with pytest.raises(ConfigError, match=r"data.device='gpu' must be one of auto, cpu, cuda: pass data.device=auto"):
        check(["data.device=gpu"], tmp_path)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as error:
        check(["batch_size=0", "training.lr=0", "model.channels=2"], tmp_path)
    assert len(str(error.value).splitlines()) == 3


def test_unwritable(tmp_path, read_only_dir):
    assert unwritable(str(tmp_path / "new" / "nested")) is None
    (tmp_path / "file").write_text("")
    assert unwritable(str(tmp_path / "file" / "below")) == f"{tmp_path / 'file'} is a file, not a folder"
    assert unwritable(str(read_only_dir / "below")) == f"{read_only_dir} is not writable"
    assert not (tmp_path / "new").exists()


def test_training_rollout_needs_long_enough_windows(tmp_path):
    with pytest.raises(ConfigError, match=r"training.rollout_steps=2 must be .* data.window_states - 1 = 1"):
        check(["training.rollout_steps=2", "data.window_states=2"], tmp_path)
    check(["training.rollout_steps=2", "data.window_states=3"], tmp_path)


def test_training_windows_must_fit_in_the_training_trajectories(tmp_path):
    check(["training.rollout_steps=20", "eval.rollout_steps=20"], tmp_path)  # one window: the whole trajectory
    with pytest.raises(
        ConfigError, match=r"data.window_states=22 states .* lower training.rollout_steps to at most 20"
    ):
        check(["training.rollout_steps=21", "eval.rollout_steps=20"], tmp_path)
    check(["data.max_window_start=18"], tmp_path)  # 21 states, windows of 3
    with pytest.raises(ConfigError, match=r"data.max_window_start=19: .* pass data.max_window_start=<0 to 18>"):
        check(["data.max_window_start=19"], tmp_path)
    with pytest.raises(ConfigError, match=r"data.max_window_start=-1 must be an integer >= 0"):
        check(["data.max_window_start=-1"], tmp_path)


def test_validation_rollout_within_the_validation_trajectories(tmp_path):
    check(["eval.val_rollout_steps=24"], tmp_path)  # the validation trajectories follow it
    message = r"eval.val_rollout_steps=12 must be an integer from 1 to data.val_rollout_steps=10"
    with pytest.raises(ConfigError, match=message):
        check(["eval.val_rollout_steps=12", "data.val_rollout_steps=10"], tmp_path)
    with pytest.raises(ConfigError, match=r"eval.val_rollout_steps=0 must be an integer from 1"):
        check(["eval.val_rollout_steps=0"], tmp_path)


def test_every_device_needs_validation_and_test_examples(tmp_path):
    with pytest.raises(ConfigError) as error:
        check(["trainer.devices=4", "batch_size=4", "data.num_val_examples=2", "data.num_test_examples=3"], tmp_path)
    assert "data.num_val_examples=2 leaves some of the 4 devices" in str(error.value)
    assert "raise data.num_test_examples to at least 4 or lower trainer.devices" in str(error.value)


def test_a_hyperdiffusion_rule_that_does_not_exist_stops_before_any_work(tmp_path):
    message = fails_before_any_work(tmp_path, ["data.hyperdiffusion=fixd"])
    assert "data.hyperdiffusion='fixd' must be one of grid, fixed: pass e.g. data.hyperdiffusion=grid" in message
    check(["data.hyperdiffusion=grid"], tmp_path)
    check(["data.hyperdiffusion=fixed"], tmp_path)


@pytest.mark.parametrize("reference", ["32", "32x", "x64", "0x64", "32*64"])
def test_hyperdiffusion_reference_names_a_grid(reference, tmp_path):
    message = rf"data.hyperdiffusion_reference='?{re.escape(reference)}'? must name a grid as <nlat>x<nlon>: pass e.g."
    with pytest.raises(ConfigError, match=message):
        check(["data.hyperdiffusion=fixed", f"data.hyperdiffusion_reference={reference}"], tmp_path)
    check(["data.hyperdiffusion=fixed", "data.hyperdiffusion_reference=64x128"], tmp_path)


@pytest.mark.parametrize("initial", ["0", "12", "many"])
def test_initial_band_within_the_data_band(initial, tmp_path):
    with pytest.raises(ConfigError, match=r"data.initial_lmax=.* must be null or an integer from 1 to data.lmax=11"):
        check([f"data.initial_lmax={initial}"], tmp_path)
    check(["data.initial_lmax=11"], tmp_path)
    check(["data.initial_lmax=null"], tmp_path)
