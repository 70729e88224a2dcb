"""test_errors.npz: every forecast's errors per test trajectory, channel and lead, so that any later comparison of
two forecasts on the same trajectories can be paired.

Arrays: "forecasts" (str: "model", then the baselines), "channels" (str, `data.CHANNELS`), "lead_hours" (int, 1..N)
and one float64 array per metric of `models.metrics.METRICS`, named after it, of shape (forecast, trajectory,
channel, lead), trajectories in test-split order. Numpy only: reading it costs no torch import.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runs.folder import ERRORS_FILE

NAMES = ("forecasts", "channels", "lead_hours")  # the arrays that label the metric arrays' axes


@dataclass(frozen=True)
class TrajectoryErrors:
    """The contents of one test_errors.npz: ``metrics`` maps a metric's name to (forecast, trajectory, channel,
    lead) values."""

    forecasts: list[str]
    channels: list[str]
    lead_hours: list[int]
    metrics: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        sizes = (len(self.forecasts), len(self.channels), len(self.lead_hours))
        for name, values in self.metrics.items():
            if values.ndim != 4 or (values.shape[0], *values.shape[2:]) != sizes:
                raise ValueError(
                    f"{name} has shape {values.shape}: expected (forecast, trajectory, channel, lead) with "
                    f"{sizes[0]} forecasts, {sizes[1]} channels and {sizes[2]} leads"
                )

    @property
    def num_trajectories(self) -> int:
        return next(iter(self.metrics.values())).shape[1]

    def of(self, metric: str, forecast: str) -> np.ndarray:
        """One forecast's values of ``metric``: (trajectory, channel, lead)."""
        return self.metrics[metric][self.forecasts.index(forecast)]

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / ERRORS_FILE
        labels = {"forecasts": np.array(self.forecasts), "channels": np.array(self.channels)}
        np.savez(path, **labels, lead_hours=np.array(self.lead_hours, dtype=int), **self.metrics)
        return path


def load_test_errors(run_dir: str | Path) -> TrajectoryErrors:
    """The test_errors.npz of the run (or evaluation) folder ``run_dir``."""
    with np.load(Path(run_dir) / ERRORS_FILE) as arrays:
        return TrajectoryErrors(
            forecasts=arrays["forecasts"].tolist(),
            channels=arrays["channels"].tolist(),
            lead_hours=arrays["lead_hours"].tolist(),
            metrics={name: arrays[name] for name in arrays.files if name not in NAMES},
        )
