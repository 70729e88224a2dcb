"""One training step (forward, loss, backward, Adam) of the old default SFNO against the default model as it ships.

    python benchmarks/step_time.py [--threads 2] [--batch-size 16] [--steps 40] [overrides ...]

Reference: neuraloperator's SFNO as the app used to train it, modes (32, 64), width 32, 4 layers, its own
transforms, the three fields in and its default grid embedding. Default: the module `python train.py <overrides>`
builds (`runs.build.build_module` on the composed config), its forward under Lightning's autocast where the overrides
say `trainer.precision=bf16-mixed` (the reference stays float32). Both train on the same random batches of the data
preset's shape; the two models' steps alternate in blocks, so that a change in the machine's load hits both, and
each figure is the median over its steps after ``--warmup``. Between the blocks the machine's float32 rate on a
square 1024x1024 matrix product is measured with the same threads (``gemm_gflops``, median), so that ``efficiency``
= ``step_gflop`` / ``default_step_s`` / ``gemm_gflops`` says how near the default step comes to what this machine
does at best; the FLOPs of a step are counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and
convolutions). What the network's shapes allow is measured too: every matrix product of one default step (skinny
products of all grid points by 4 to 64 channels, which read and write more than they compute) is recorded with its
shapes and memory layout and run again on its own, with warm caches, between the blocks: ``products_gflops`` is the
step's FLOPs (all of them are those products') over the sum of their median times, ``ceiling`` =
``products_gflops`` / ``gemm_gflops`` the efficiency of a step that did nothing but those products at that speed,
and ``of_ceiling`` = ``efficiency`` / ``ceiling``.
Prints progress to stderr and the figures as one JSON object on the last line: ``reference_step_s``,
``default_step_s``, ``ratio`` = default / reference (the median over the rounds of the ratio of the two blocks run
back to back in each, so that a change in the machine's speed between rounds cancels), the FLOPs of both steps, the
rates, and the machine.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import compose_config, gemm_gflops, machine, median_seconds, synchronize  # noqa: E402
from models.metrics import area_weights, squared_l2_loss  # noqa: E402
from runs.build import build_module, count_parameters  # noqa: E402
from runs.start import prepare_process  # noqa: E402


def reference_net(channels: int, width: int, layers: int) -> nn.Module:
    """The SFNO the app trained before it was band-limited: modes (32, 64), neuraloperator's defaults otherwise."""
    from neuralop.models import SFNO

    return SFNO(n_modes=[32, 64], in_channels=channels, out_channels=channels, hidden_channels=width, n_layers=layers)


def stepper(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    weights: torch.Tensor,
    precision: Callable[[], AbstractContextManager] = nullcontext,
):
    """One training step on a (batch, 2, channels, nlat, nlon) pair of states, forward and loss inside
    ``precision()``."""

    def step(pair: torch.Tensor) -> None:
        optimizer.zero_grad()
        with precision():
            loss = squared_l2_loss(forward(pair[:, 0]), pair[:, 1], weights)
        loss.backward()
        optimizer.step()

    return step


def forward_context(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """What Lightning runs a training step's forward in for ``trainer.precision``: nothing for float32, its autocast
    for bf16-mixed."""
    if str(precision) in ("32", "32-true"):
        return nullcontext
    if precision == "bf16-mixed":
        return MixedPrecision("bf16-mixed", device.type).forward_context
    raise ValueError(f"step_time.py times trainer.precision=32-true or bf16-mixed, not {precision}")


def timed_steps(step: Callable[[torch.Tensor], None], batches: list[torch.Tensor]) -> list[float]:
    times = []
    for batch in batches:
        synchronize()
        started = time.perf_counter()
        step(batch)
        synchronize()
        times.append(time.perf_counter() - started)
    return times


def step_gflop(step: Callable[[torch.Tensor], None], batch: torch.Tensor) -> float:
    """The FLOPs of one step, by PyTorch's FLOP counter, in GFLOP."""
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return counter.get_total_flops() / 1e9


MATRIX_PRODUCTS = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default)


class MatrixProducts(TorchDispatchMode):
    """Records every matrix product dispatched inside it: the operator and its arguments' shapes and strides."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATRIX_PRODUCTS:
            self.calls.append((func, [(arg.shape, arg.stride(), arg.dtype, arg.device) for arg in args]))
        return func(*args, **(kwargs or {}))


def recorded_products(step: Callable[[torch.Tensor], None], batch: torch.Tensor) -> list[Callable[[], torch.Tensor]]:
    """The matrix products of one step, each as a call on fresh random operands of the same shapes and layouts."""
    with MatrixProducts() as recorder:
        step(batch)
    products = []
    for func, specs in recorder.calls:
        operands = [strided_randn(*spec) for spec in specs]
        products.append(lambda func=func, operands=operands: func(*operands))
    return products


def strided_randn(shape: torch.Size, stride: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Random values in the memory layout ``stride`` (a broadcast bias's zero strides included)."""
    storage = 1 + sum((size - 1) * step for size, step in zip(shape, stride, strict=True))
    return torch.randn(storage, dtype=dtype, device=device).as_strided(shape, stride)


def products_seconds(products: list[Callable[[], torch.Tensor]], repeats: int) -> float:
    """The sum over the products of each one's median time alone, after one untimed call."""
    return sum(median_seconds(product, repeats) for product in products)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model first")
    parser.add_argument("--block", type=int, default=5, help="steps of one model before the other's")
    parser.add_argument("overrides", nargs="*", help="config overrides for the default model, as for train.py")
    args = parser.parse_args()
    cfg = compose_config(args.overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = forward_context(cfg.trainer.precision, device)
    prepare_process(cfg.float32_matmul_precision)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    default = build_module(cfg).to(device)
    channels = len(default.channels)
    reference = reference_net(channels, cfg.model.width, cfg.model.layers).to(device)
    weights = area_weights(cfg.data.nlat, cfg.data.nlon, cfg.data.grid).to(device)

    def reference_forward(state: torch.Tensor) -> torch.Tensor:
        return state + reference(state)

    steps = {
        "reference": stepper(reference_forward, torch.optim.Adam(reference.parameters(), lr=cfg.training.lr), weights),
        "default": stepper(default, default.optimizer_factory(default.parameters()), weights, precision),
    }
    shape = (args.batch_size, 2, channels, cfg.data.nlat, cfg.data.nlon)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(shape, generator=generator).to(device) for _ in range(args.block)]
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        timed_steps(step, [batches[index % args.block] for index in range(args.warmup)])
    flops = {name: step_gflop(step, batches[0]) for name, step in steps.items()}
    products = recorded_products(steps["default"], batches[0])
    gemm_rates, product_times, ratios = [], [], []
    while len(times["default"]) < args.steps:
        block_medians = {}
        for name, step in steps.items():
            block = timed_steps(step, batches)
            times[name] += block
            block_medians[name] = statistics.median(block)
            print(f"{name}: {len(times[name])} steps, median {statistics.median(times[name]):.4f} s", file=sys.stderr)
        ratios.append(block_medians["default"] / block_medians["reference"])
        gemm_rates.append(gemm_gflops(repeats=args.block))
        product_times.append(products_seconds(products, repeats=args.block))
    results = {
        "machine": machine(),
        "batch_size": args.batch_size,
        "grid": f"{cfg.data.nlat}x{cfg.data.nlon}",
        "precision": str(cfg.trainer.precision),
        "steps": len(times["default"]),
        "reference_parameters": count_parameters(reference),
        "default_parameters": count_parameters(default.net),
        "reference_step_s": round(statistics.median(times["reference"]), 4),
        "default_step_s": round(statistics.median(times["default"]), 4),
        "reference_step_gflop": round(flops["reference"], 3),
        "step_gflop": round(flops["default"], 3),
        "gemm_gflops": round(statistics.median(gemm_rates), 1),
    }
    results["ratio"] = round(statistics.median(ratios), 3)
    results["step_gflops"] = round(flops["default"] / results["default_step_s"], 1)
    results["efficiency"] = round(results["step_gflops"] / results["gemm_gflops"], 3)
    results["matrix_products"] = len(products)
    results["products_gflops"] = round(flops["default"] / statistics.median(product_times), 1)
    results["ceiling"] = round(results["products_gflops"] / results["gemm_gflops"], 3)
    results["of_ceiling"] = round(results["efficiency"] / results["ceiling"], 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
