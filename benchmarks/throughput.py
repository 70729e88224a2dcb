"""Training samples per second of one epoch, for each model on one data preset, on the GPU when there is one.

    python benchmarks/throughput.py [--models sfno fno] [--data 64x128] [--precision bf16-mixed]

Builds the data module and the Lightning module as `train.py` does (the data cache is generated first if it is
missing, and not timed). Reports the whole first epoch and its batches after the first ``--warmup`` (which carry
cuFFT plan creation and other one-off costs). Prints progress to stderr and the figures as one JSON object on the
last line.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import EpochTimer, compose_config, timing_trainer  # noqa: E402
from runs.build import build_module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["sfno", "fno"])
    parser.add_argument("--data", default="64x128", help="data preset")
    parser.add_argument("--precision", default="bf16-mixed", help="Lightning precision")
    parser.add_argument("--warmup", type=int, default=5, help="batches left out of the steady figure")
    parser.add_argument("--examples", type=int, help="training examples (default: the preset's)")
    parser.add_argument("--compile", action="store_true", help="training.compile=True (compilation is timed)")
    parser.add_argument("--data-root", default="cache")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    results = {"device": device, "data": args.data, "precision": args.precision, "compile": args.compile}
    results["torch"] = torch.__version__
    for model in args.models:
        overrides = [f"model={model}", f"data={args.data}", f"paths.data_root={args.data_root}"]
        overrides += [f"data.num_examples={args.examples}"] if args.examples else []
        overrides += ["training.compile=True"] if args.compile else []
        cfg = compose_config(overrides)
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        torch.manual_seed(0)
        timer = EpochTimer(args.warmup)
        trainer = timing_trainer(timer, max_epochs=1, precision=args.precision)
        trainer.fit(build_module(cfg), datamodule=datamodule)
        batches = trainer.num_training_batches
        samples = batches * cfg.batch_size
        steady_samples = (batches - args.warmup) * cfg.batch_size
        results[model] = {
            "batch_size": cfg.batch_size,
            "samples": samples,
            "epoch_s": round(timer.elapsed, 3),
            "samples_per_s": round(samples / timer.elapsed, 1),
            "steady_samples_per_s": round(steady_samples / timer.steady, 1) if batches > args.warmup else None,
        }
        print(f"{model}: {json.dumps(results[model])}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
