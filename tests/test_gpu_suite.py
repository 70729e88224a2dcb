"""benchmarks/gpu_suite.py: every part runs, tiny, on a CPU (its --dry-run), and writes its JSON and summary."""

import json
import subprocess
import sys

from tests.conftest import REPO


def test_the_gpu_suite_dry_run_writes_every_figure(tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--dry-run", "--out", str(tmp_path)]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    results = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert set(results["throughput"]) == {"sfno 32x64", "fno 32x64"}
    assert all(best["steady_samples_per_s"] > 0 for best in results["throughput"].values())
    assert results["generation"]["cpu_trajectories_per_s"] > 0
    runs = results["experiment_gpu"]
    assert set(runs) == {"float32_matmul_precision=highest", "float32_matmul_precision=high"}
    for run in runs.values():
        assert len(run["model_rel_l2"]) == len(run["linear_rel_l2"]) == len(run["leads_h"]) > 0
    summary = (tmp_path / "gpu_suite.md").read_text()
    assert "experiment=gpu" in summary and "sfno 32x64" in summary
