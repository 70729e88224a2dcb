"""test_physics.npz: the physical diagnostics of every test rollout, per trajectory and lead, beside test_errors.npz
(same forecasts, same trajectories in test-split order), so that any later comparison can be paired.

Every measure is a float64 array whose axes are named by the string array "<name>_axes"; each axis that has labels
has them in the array of its name: "source" (str: "truth", then the forecasts), "forecast" (str: "model", then the
baselines), "channel" (`data.CHANNELS`), "invariant" (`sphere.INVARIANTS`), "hour" (int, 0..N: lead 0 is the initial
state), "lead" (int, 1..N), "band" (float, (band, 2): the |latitude| range of each band in degrees, poles first),
"moment" (str), "degree" (int). "trajectory" has none. "band_limit" (int) is the degree from which the truth has no
energy (data.lmax). Numpy only: reading it costs no torch import.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runs.folder import PHYSICS_FILE

LABELLED_AXES = ("source", "forecast", "channel", "invariant", "hour", "lead", "band", "moment", "degree")
MOMENTS = ("area_mean", "area_mean_square")  # of each channel's field, physical units
# The axes of each measure the test step keeps (models.module.NeuralOperatorModule.on_test_epoch_end).
AXES = {
    "invariants": ("source", "trajectory", "invariant", "hour"),
    "moments": ("source", "trajectory", "channel", "lead", "moment"),
    "energy_fraction_above": ("source", "trajectory", "channel", "lead"),
    "latitude_band_rel_l2": ("forecast", "trajectory", "channel", "band", "lead"),
    "authors_pooled_rel_l2": ("forecast", "trajectory", "lead"),
    "power_spectrum": ("source", "lead", "channel", "degree"),  # the mean over trajectories
    "spectral_ratio": ("forecast", "lead", "channel", "degree"),  # of the mean spectra, forecast over truth
}


@dataclass(frozen=True)
class RolloutPhysics:
    """The contents of one test_physics.npz: ``labels`` maps an axis to its labels, ``measures`` a measure of `AXES`
    to its values."""

    labels: dict[str, np.ndarray]
    measures: dict[str, np.ndarray]
    band_limit: int

    def __post_init__(self) -> None:
        for name, values in self.measures.items():
            expected = tuple(len(self.labels[axis]) if axis in self.labels else None for axis in AXES[name])
            if values.ndim != len(expected) or any(
                size is not None and size != actual for size, actual in zip(expected, values.shape, strict=True)
            ):
                raise ValueError(f"{name} has shape {values.shape}: expected axes {AXES[name]} of sizes {expected}")

    def of(self, measure: str, source: str) -> np.ndarray:
        """One forecast's (or the truth's) values of ``measure``, its first axis taken."""
        axis = AXES[measure][0]
        return self.measures[measure][list(self.labels[axis]).index(source)]

    @property
    def num_trajectories(self) -> int:
        return self.measures["invariants"].shape[1]

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / PHYSICS_FILE
        axes = {f"{name}_axes": np.array(AXES[name]) for name in self.measures}
        np.savez(path, **self.labels, **self.measures, **axes, band_limit=np.array(self.band_limit))
        return path


def load_test_physics(run_dir: str | Path) -> RolloutPhysics:
    """The test_physics.npz of the run (or evaluation) folder ``run_dir``."""
    with np.load(Path(run_dir) / PHYSICS_FILE) as arrays:
        return RolloutPhysics(
            labels={name: arrays[name] for name in arrays.files if name in LABELLED_AXES},
            measures={name: arrays[name] for name in arrays.files if name in AXES},
            band_limit=int(arrays["band_limit"]),
        )
