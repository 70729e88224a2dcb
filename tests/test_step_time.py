"""benchmarks/step_time.py's ceiling: the matrix products it replays are the step's own, FLOP for FLOP; the precision
it times is the one the overrides ask for; and the machine every benchmark names."""

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import common
from benchmarks.step_time import forward_context, products_seconds, recorded_products


def test_the_replayed_products_are_the_steps_with_their_flops_and_layouts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(net.parameters())

    def step(batch: torch.Tensor) -> None:
        optimizer.zero_grad()
        net(batch).square().mean().backward()
        optimizer.step()

    batch = torch.randn(32, 4)
    with FlopCounterMode(display=False) as step_counter:
        step(batch)
    products = recorded_products(step, batch)

    # forward: two addmm; backward: two weight gradients and one input gradient (the batch needs none)
    assert len(products) == 5
    with FlopCounterMode(display=False) as replay_counter:
        outputs = [product() for product in products]
    assert replay_counter.get_total_flops() == step_counter.get_total_flops() > 0
    assert sorted(tuple(output.shape) for output in outputs) == [(3, 8), (8, 4), (32, 3), (32, 8), (32, 8)]
    assert products_seconds(products, repeats=2) > 0


def test_the_machine_is_named_by_model_flags_cores_threads_and_torch(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("cpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f\n")
    monkeypatch.setattr(common, "Path", lambda path: cpuinfo if path == "/proc/cpuinfo" else Path(path))
    named = common.machine()
    assert named["cpu"] == "AMD EPYC (family 25, model 17)"
    assert named["cpu_flags"] == {"avx2": True, "avx512f": True, "amx_tile": False}
    assert named["cpu_cores"] == os.cpu_count() and named["threads"] == torch.get_num_threads()
    assert named["torch"] == torch.__version__


def test_the_default_step_runs_in_the_precision_the_overrides_ask_for():
    layer, x = nn.Linear(4, 4), torch.randn(2, 4)
    cpu = torch.device("cpu")
    for precision, dtype in (("32-true", torch.float32), (32, torch.float32), ("bf16-mixed", torch.bfloat16)):
        with forward_context(precision, cpu)():
            assert layer(x).dtype == dtype, precision
    with pytest.raises(ValueError, match="trainer.precision=32-true or bf16-mixed, not 16-true"):
        forward_context("16-true", cpu)
