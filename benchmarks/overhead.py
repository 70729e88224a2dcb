"""Our Lightning training step against a bare PyTorch loop: same model, optimizer, batches and loss.

    python benchmarks/overhead.py [--model sfno] [--steps 60] [--warmup 5]

Prints progress to stderr and the figures as one JSON object on the last line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import EpochTimer, compose_config, machine, synchronize, timing_trainer  # noqa: E402
from models.metrics import squared_l2_loss  # noqa: E402
from runs.build import build_module  # noqa: E402


def lightning_seconds(cfg, datamodule, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    module = build_module(cfg)
    timer = EpochTimer(warmup)
    trainer = timing_trainer(timer, max_steps=warmup + steps)
    trainer.fit(module, datamodule=datamodule)
    return timer.steady


def bare_seconds(cfg, datamodule, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = build_module(cfg).to(device)
    optimizer = module.optimizer_factory(module.parameters())
    weights = module.weights
    loader = datamodule.train_dataloader()
    started = None
    for step, batch in enumerate(loader):
        if step == warmup:
            synchronize()
            started = time.perf_counter()
        if step == warmup + steps:
            break
        batch = batch.to(device)
        optimizer.zero_grad()
        prediction = batch[:, 0] + module.net(batch[:, 0])
        loss = squared_l2_loss(prediction, batch[:, 1], weights)
        loss.backward()
        optimizer.step()
    synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sfno")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--data-root", default="cache")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    cfg = compose_config([f"model={args.model}", f"paths.data_root={args.data_root}"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    results = {"machine": machine(), "model": args.model, "steps": args.steps, "batch_size": cfg.batch_size}
    results["bare_s"] = bare_seconds(cfg, datamodule, args.steps, args.warmup)
    print(f"bare loop: {results['bare_s']:.2f} s", file=sys.stderr)
    results["lightning_s"] = lightning_seconds(cfg, datamodule, args.steps, args.warmup)
    print(f"lightning: {results['lightning_s']:.2f} s", file=sys.stderr)
    results["ratio"] = results["lightning_s"] / results["bare_s"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
