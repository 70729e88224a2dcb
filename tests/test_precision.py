"""`trainer.precision=bf16-mixed` and `float32_matmul_precision`: pointwise layers in bfloat16 or TensorFloat32,
spectral transforms in float32."""

import json
import math

import pytest
import torch
from hydra.utils import instantiate

from models.precision import spectral_in_float32
from models.spherical import Analysis, Synthesis
from runs.start import prepare_process, start_run
from tests.conftest import TINY, TINY_SFNO, compose_config, fit_tiny_module, run_train

FFTS = ("rfft", "irfft", "rfftn", "irfftn", "fft", "ifft")


@pytest.mark.parametrize("model", ["sfno", "fno", "sfno_th"])
def test_spectral_transforms_run_in_float32_under_autocast(model, monkeypatch):
    calls = []
    for name in FFTS:
        fft = getattr(torch.fft, name)

        def recorded(x, *args, _fft=fft, **kwargs):
            calls.append((x.dtype, torch.is_autocast_enabled("cpu")))
            return _fft(x, *args, **kwargs)

        monkeypatch.setattr(torch.fft, name, recorded)
    for transform in (Analysis, Synthesis):  # the default SFNO's transforms are matrix products, not FFTs

        def recorded_forward(self, x, *args, _forward=transform.forward):
            calls.append((x.dtype, torch.is_autocast_enabled("cpu")))
            return _forward(self, x, *args)

        monkeypatch.setattr(transform, "forward", recorded_forward)
    net = instantiate(compose_config([f"model={model}", "model.width=8", "model.layers=1"]).model.net)
    state = torch.randn(2, 4, 32, 64)  # the fields and sin(latitude)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(state)
    if model != "sfno_th":  # torch-harmonics' own SFNO turns autocast off itself, but for CUDA only
        assert (torch.bfloat16, True) in calls, "without the wrapper, transforms see bfloat16 under autocast"

    calls.clear()
    spectral_in_float32(net)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = net(state)
    assert calls and all(dtype in (torch.float32, torch.float64, torch.complex64) for dtype, _ in calls)
    assert not any(autocast for _, autocast in calls), "every transform runs with autocast off"
    assert prediction.dtype == torch.bfloat16, "the pointwise layers still run in bfloat16"
    prediction.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)

    calls.clear()
    assert net(state).dtype == torch.float32, "outside autocast nothing changes"
    assert not any(autocast for _, autocast in calls)


def test_bf16_mixed_trains_and_tests_on_cpu(tmp_path, data_root):
    log_dir = tmp_path / "outputs"
    args = [*TINY, "trainer.accelerator=cpu", "trainer.precision=bf16-mixed", "debug=True"]
    result = run_train([*args, f"paths.data_root={data_root}", f"paths.log_dir={log_dir}"], cwd=tmp_path)
    assert "Using bfloat16 Automatic Mixed Precision (AMP)" in result.stdout + result.stderr
    run = log_dir / "debug"
    checkpoint = torch.load(run / "ckpt" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert all(value.dtype != torch.bfloat16 for value in checkpoint["state_dict"].values()), "float32 weights"
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert all(math.isfinite(value) for value in metrics["rel_l2"]["model"]["mean"])
    # The test's diagnostics at full precision: the truth has no energy above the data's band (bfloat16 spectra
    # would show a thousandth there).
    truth = metrics["spectral_ratio"]["energy_fraction_above"]["persistence"]["mean"]["truth"]
    assert max(truth) < 1e-9, truth


@pytest.fixture
def matmul_precision():
    """Put back the process's float32 matrix-product precision after the test."""
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    ("precision", "matmuls"),
    [
        ("32-true", "highest"),
        ("32-true", "high"),
        ("32-true", "medium"),
        ("bf16-mixed", "highest"),
        ("bf16-mixed", "high"),
    ],
)
def test_each_precision_setting_trains_a_step_with_float32_transforms(
    precision, matmuls, tmp_path, monkeypatch, matmul_precision
):
    seen = []
    for transform in (Analysis, Synthesis):

        def recorded_forward(self, x, *args, _forward=transform.forward):
            seen.append((x.dtype, torch.get_float32_matmul_precision()))
            return _forward(self, x, *args)

        monkeypatch.setattr(transform, "forward", recorded_forward)
    prepare_process(matmuls)
    module, trainer = fit_tiny_module(TINY_SFNO, tmp_path, precision=precision, max_steps=1, num_sanity_val_steps=0)
    assert trainer.global_step == 1
    assert torch.get_float32_matmul_precision() == matmuls, "the setting holds outside the transforms"
    assert seen and set(seen) <= {(torch.float32, "highest"), (torch.complex64, "highest")}
    assert all(torch.isfinite(value).all() for value in module.parameters())


def test_a_run_applies_its_float32_matmul_precision(tmp_path, matmul_precision):
    start_run(compose_config([*TINY, "float32_matmul_precision=medium"], output_dir=tmp_path))
    assert torch.get_float32_matmul_precision() == "medium"
