"""benchmarks/step_time.py's ceiling: the matrix products it replays are the step's own, FLOP for FLOP."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.step_time import products_seconds, recorded_products


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
