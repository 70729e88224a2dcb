"""Everything the project wants to know from a GPU, in one run of at most 8 minutes on one GPU.

    python benchmarks/gpu_suite.py [--out outputs/gpu_suite]     # on a GPU machine
    python benchmarks/gpu_suite.py --dry-run                      # every part, tiny, on a CPU (a test runs it)

1. The throughput sweep (benchmarks/throughput.py) at 64x128 and 128x256, both models, every precision, batches
   64 to 1024: the best setting per model and preset (samples/s, batch, precision, peak memory).
2. Data generation at 256x512 on the GPU against the CPU (trajectories per second, spin-up included).
3. The `experiment=gpu` preset, as `python train.py experiment=gpu` runs it, with the default float32 matrix products
   and with `float32_matmul_precision=high` (TensorFloat32), the two runs side by side on the one GPU (8 minutes
   hold no two runs in a row): each one's wall time, and its test errors against the linear emulator's.

Writes ``gpu_suite.json`` (every figure and the machine) and ``gpu_suite.md`` (a short summary for the README) into
``--out``; the runs' folders land there too. The last stdout line is the JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import data_spec, machine  # noqa: E402
from benchmarks.throughput import PRECISIONS, measure  # noqa: E402
from data.generate import generate_trajectories  # noqa: E402
from runs.folder import METRICS_FILE  # noqa: E402

# The parts' sizes on a GPU and in a dry run on a CPU.
FULL = {
    "models": ["sfno", "fno"],
    "presets": ["64x128", "128x256"],
    "precisions": list(PRECISIONS),
    "batch_sizes": [64, 256, 1024],
    "steps": 10,
    "warmup": 3,
    "generation": {"preset": "256x512", "gpu_trajectories": 64, "cpu_trajectories": 2},
    "preset_overrides": ["experiment=gpu"],
}
DRY_RUN = {
    "models": ["sfno", "fno"],
    "presets": ["32x64"],
    "precisions": ["32-true"],
    "batch_sizes": [4],
    "steps": 1,
    "warmup": 1,
    "generation": {"preset": "32x64", "gpu_trajectories": 2, "cpu_trajectories": 2},
    "preset_overrides": [
        "experiment=gpu",
        "trainer=cpu",
        "data.num_examples=8",
        "data.num_val_examples=4",
        "data.num_test_examples=2",
        "data.spinup_steps=1",
        "data.windows_per_epoch=8",
        "eval.rollout_steps=5",
        "eval.val_rollout_steps=2",
        "eval.map_leads=[1,5]",
        "eval.plots=False",
        "batch_size=4",
        "training.effective_batch_size=4",
        "training.max_epochs=2",
        "training.rollout_start_epoch=1",
        "model.width=8",
        "model.layers=1",
    ],
}
LEADS = [1, 5, 10, 20]  # hours of the test errors in the summary, where the rollout reaches them


def throughput(sizes: dict) -> dict:
    """The best setting of each model and preset over the precisions and batch sizes (benchmarks/throughput.py)."""
    settings = argparse.Namespace(steps=sizes["steps"], warmup=sizes["warmup"], compile=False)
    best = {}
    for model in sizes["models"]:
        for preset in sizes["presets"]:
            for precision in sizes["precisions"]:
                for batch_size in sizes["batch_sizes"]:
                    try:
                        result = measure(model, preset, precision, batch_size, settings)
                    except torch.OutOfMemoryError:
                        break
                    finally:
                        torch.cuda.empty_cache() if torch.cuda.is_available() else None
                    print(json.dumps(result), file=sys.stderr)
                    key = f"{model} {preset}"
                    if key not in best or result["steady_samples_per_s"] > best[key]["steady_samples_per_s"]:
                        best[key] = result
    return best


def generation(sizes: dict) -> dict:
    """Trajectories per second of the data generator on the GPU (where there is one) and on the CPU."""
    spec = data_spec([f"data={sizes['preset']}"])
    rates = {"preset": sizes["preset"], "gpu_trajectories_per_s": None}
    devices = [("cpu", sizes["cpu_trajectories"])]
    devices += [("cuda", sizes["gpu_trajectories"])] if torch.cuda.is_available() else []
    for device, count in devices:
        generate_trajectories(spec, 1, spec.split_shape("train")[1], seed=0, device=device)  # set-up, CUDA start
        started = time.perf_counter()
        generate_trajectories(spec, count, spec.split_shape("train")[1], seed=1, device=device)
        rate = count / (time.perf_counter() - started)
        rates["gpu_trajectories_per_s" if device == "cuda" else "cpu_trajectories_per_s"] = round(rate, 2)
    if rates["gpu_trajectories_per_s"] is not None:
        rates["gpu_over_cpu"] = round(rates["gpu_trajectories_per_s"] / rates["cpu_trajectories_per_s"], 1)
    return rates


def preset_runs(sizes: dict, out: Path) -> dict:
    """`python train.py experiment=gpu` with float32 and with TensorFloat32 matrix products, side by side: wall time
    and the test errors (channel mean) of the model and the linear emulator at the summary's leads."""
    started, processes = {}, {}
    for matmuls in ("highest", "high"):
        run_dir = out / f"experiment_gpu_{matmuls}"
        command = [sys.executable, str(REPO / "train.py"), *sizes["preset_overrides"], "logger=csv"]
        command += [f"float32_matmul_precision={matmuls}", f"hydra.run.dir={run_dir}"]
        log = (out / f"experiment_gpu_{matmuls}.log").open("w")
        started[matmuls] = time.perf_counter()
        processes[matmuls] = (subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), run_dir)
    results = {}
    for matmuls, (process, run_dir) in processes.items():
        if process.wait() != 0:
            raise RuntimeError(f"train.py {' '.join(sizes['preset_overrides'])} failed: see {run_dir}.log")
        wall = time.perf_counter() - started[matmuls]
        metrics = json.loads((run_dir / METRICS_FILE).read_text())["rel_l2"]
        steps = len(metrics["model"]["mean"])
        leads = [lead for lead in LEADS if lead <= steps] or [steps]
        results[f"float32_matmul_precision={matmuls}"] = {
            "wall_s": round(wall, 1),
            "leads_h": leads,
            "model_rel_l2": [round(metrics["model"]["mean"][lead - 1], 4) for lead in leads],
            "linear_rel_l2": [round(metrics["linear"]["mean"][lead - 1], 4) for lead in leads],
        }
    return results


def summary(results: dict) -> str:
    """The Markdown the README's GPU section takes."""
    lines = [f"GPU suite on {results['machine']['gpu'] or results['machine']['cpu']} ({results['machine']['torch']})"]
    lines += [
        "",
        "| model, preset | best samples/s | batch | precision | peak memory (GB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, best in results["throughput"].items():
        memory = best.get("peak_memory_gb", "n/a")
        lines.append(
            f"| {key} | {best['steady_samples_per_s']} | {best['batch_size']} | {best['precision']} | {memory} |"
        )
    gen = results["generation"]
    lines += ["", f"Data generation at {gen['preset']}: GPU {gen['gpu_trajectories_per_s']} trajectories/s, CPU "]
    lines[-1] += f"{gen['cpu_trajectories_per_s']} trajectories/s."
    lines += [
        "",
        "| `experiment=gpu` | wall time (s) | test rel. L2, model | linear emulator |",
        "| --- | --- | --- | --- |",
    ]
    for setting, run in results["experiment_gpu"].items():
        errors = " / ".join(f"{value:.3f}" for value in run["model_rel_l2"])
        linear = " / ".join(f"{value:.3f}" for value in run["linear_rel_l2"])
        lines.append(f"| {setting} | {run['wall_s']} | {errors} | {linear} |")
    lines.append(f"\n(errors at {'/'.join(map(str, run['leads_h']))} h; both runs side by side on one GPU)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="every part tiny, on the CPU, in under a minute")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_suite")
    args = parser.parse_args()
    sizes = DRY_RUN if args.dry_run else FULL
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU: run on a GPU machine, or pass --dry-run")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "disabled")
    started = time.perf_counter()
    results = {"machine": machine(), "dry_run": args.dry_run}
    results["throughput"] = throughput(sizes)
    results["generation"] = generation(sizes["generation"])
    results["experiment_gpu"] = preset_runs(sizes, args.out)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    (args.out / "gpu_suite.json").write_text(json.dumps(results, indent=2))
    (args.out / "gpu_suite.md").write_text(summary(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
