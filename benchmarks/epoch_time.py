"""One training epoch through our pipeline against the blog's reference pipeline.

    python benchmarks/epoch_time.py [--models sfno fno] [--examples 256]

Reference: neuraloperator's SphericalSWEDataset, which integrates a fresh random
state on every access, behind a plain DataLoader. Ours: the cached, normalised
split batched by one indexing operation. Same model, optimizer, batch size,
number of examples and Lightning loop; data preparation is not timed for
either (ours is a cache hit). Prints progress to stderr and the figures as one
JSON object on the last line.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import EpochTimer, compose_config, machine, timing_trainer  # noqa: E402
from runs.build import build_module  # noqa: E402


def as_trajectories(batch: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """The reference's {"x": input, "y": target} samples as our (batch, 2, 3, nlat, nlon) trajectories."""
    return torch.stack([torch.stack([sample["x"], sample["y"]]) for sample in batch])


def epoch_seconds(cfg, train_loader: DataLoader) -> float:
    torch.manual_seed(0)
    timer = EpochTimer()
    trainer = timing_trainer(timer, max_epochs=1)
    trainer.fit(build_module(cfg), train_dataloaders=train_loader)
    return timer.elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["sfno", "fno"])
    parser.add_argument("--examples", type=int, default=256)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    from neuralop.data.datasets.spherical_swe import SphericalSWEDataset

    results = {"machine": machine(), "examples": args.examples, "resolution": "32x64"}
    with tempfile.TemporaryDirectory() as data_root:
        for model in args.models:
            overrides = [f"model={model}", f"data.windows_per_epoch={args.examples}", f"paths.data_root={data_root}"]
            cfg = compose_config(overrides)
            datamodule = instantiate(cfg.data)
            datamodule.prepare_data()
            datamodule.setup("fit")
            ours = epoch_seconds(cfg, datamodule.train_dataloader())
            reference_set = SphericalSWEDataset(dims=(cfg.data.nlat, cfg.data.nlon), num_examples=args.examples)
            reference_loader = DataLoader(
                reference_set, batch_size=cfg.batch_size, shuffle=True, collate_fn=as_trajectories
            )
            reference = epoch_seconds(cfg, reference_loader)
            results[model] = {"ours_s": ours, "reference_s": reference, "speedup": reference / ours}
            print(f"{model}: ours {ours:.1f} s, reference {reference:.1f} s", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
