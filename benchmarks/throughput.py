"""Steady training samples per second and peak GPU memory over batch sizes, precisions, data presets and models.

    python benchmarks/throughput.py [--models sfno fno] [--presets 64x128 128x256] [--batch-sizes 16 32 ... 2048]
                                    [--precisions 32-true tf32 bf16-mixed] [--steps 20] [--warmup 5] [--compile]
    python benchmarks/throughput.py --models sfno --presets 32x64 --batch-sizes 16 32 --steps 3 --warmup 1   # a CPU

Each setting trains the module `train.py` builds (`runs.build.build_module`) through Lightning for ``--warmup``
steps, which carry cuFFT plans and caches and are not timed, then ``--steps`` timed steps. The batches are random
trajectories of the preset's shape, made once on the device: the benchmark measures the model step, not the data
(generating 128x256 data takes minutes). Precisions: ``32-true`` (float32 with PyTorch's default matrix-product
precision, the app's default), ``tf32`` (32-true with ``float32_matmul_precision=high``: TensorFloat32 matrix
products), ``bf16-mixed``. Batch sizes grow until one does not fit in GPU memory, which ends that precision's sweep.
Prints one line per setting to stderr and everything as one JSON object on the last line, with the best setting of
each model and preset.
"""

import argparse
import gc
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import EpochTimer, compose_config, machine, timing_trainer  # noqa: E402
from runs.build import build_module  # noqa: E402
from runs.start import prepare_process  # noqa: E402

# --precisions name -> (Lightning's trainer.precision, float32_matmul_precision)
PRECISIONS = {"32-true": ("32-true", "highest"), "tf32": ("32-true", "high"), "bf16-mixed": ("bf16-mixed", "highest")}
BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048]


def random_batches(cfg, batch_size: int, count: int, device: torch.device) -> DataLoader:
    """``count`` batches of one random (batch, data.window_states, channels, nlat, nlon) tensor, already on the
    device."""
    shape = (batch_size, cfg.data.window_states, cfg.model.channels, cfg.data.nlat, cfg.data.nlon)
    batch = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    return DataLoader([batch] * count, batch_size=None)


def measure(model: str, preset: str, precision: str, batch_size: int, args: argparse.Namespace) -> dict:
    """Steady samples/s and peak memory of training one setting."""
    trainer_precision, matmul_precision = PRECISIONS[precision]
    overrides = [f"model={model}", f"data={preset}", f"batch_size={batch_size}"]
    overrides += ["training.compile=True"] if args.compile else []
    cfg = compose_config(overrides)
    prepare_process(matmul_precision)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    timer = EpochTimer(args.warmup)
    trainer = timing_trainer(timer, max_steps=args.warmup + args.steps, precision=trainer_precision)
    trainer.fit(build_module(cfg), train_dataloaders=random_batches(cfg, batch_size, args.warmup + args.steps, device))
    result = {
        "model": model,
        "data": preset,
        "precision": precision,
        "batch_size": batch_size,
        "step_s": round(timer.steady / args.steps, 5),
        "steady_samples_per_s": round(args.steps * batch_size / timer.steady, 1),
    }
    if device.type == "cuda":
        result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["sfno", "fno"])
    parser.add_argument("--presets", nargs="+", default=["64x128", "128x256"], help="data presets")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=BATCH_SIZES, help="in increasing order")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--compile", action="store_true", help="training.compile=True (compilation is not timed)")
    args = parser.parse_args()
    results = {"machine": machine(), "compile": args.compile, "steps": args.steps}
    results["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32  # convolutions: TF32 on GPUs unless switched off
    runs, best = [], {}
    for model in args.models:
        for preset in args.presets:
            for precision in args.precisions:
                for batch_size in sorted(args.batch_sizes):
                    try:
                        result = measure(model, preset, precision, batch_size, args)
                    except torch.OutOfMemoryError:
                        print(f"{model} {preset} {precision} batch {batch_size}: out of memory", file=sys.stderr)
                        break
                    finally:
                        gc.collect()
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                    runs.append(result)
                    print(json.dumps(result), file=sys.stderr)
                    key = f"{model} {preset}"
                    if key not in best or result["steady_samples_per_s"] > best[key]["steady_samples_per_s"]:
                        best[key] = result
    results["runs"], results["best"] = runs, best
    print(json.dumps(results))


if __name__ == "__main__":
    main()
