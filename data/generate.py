"""Shallow-water data: generated once, batched and seeded, cached in one HDF5 file.

Each split is a set of trajectories of one-hour states, shape
(num, steps, 3, nlat, nlon) in physical units (geopotential, vorticity,
divergence). Every trajectory starts from torch-harmonics' random initial
condition and is integrated for ``spinup_steps`` hours before its first state is
kept, because those initial conditions are far from balance: the geopotential's
spread doubles in the first hour and settles after about three.
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from data import CHANNELS
from data.baselines import Climatology, LinearSpectralEmulator, Persistence
from data.solver import BatchedShallowWaterSolver

log = logging.getLogger(__name__)

# Bump whenever the generation code changes what a given spec produces.
FORMAT_VERSION = 3
# Grid points integrated at once (batch x nlat x nlon): larger batches spill out of the CPU caches and run slower.
CHUNK_POINTS = 2**17
SPLITS = ("train", "val", "test")
SECONDS_PER_STEP = 3600.0


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Everything that determines the generated arrays; its hash names the cache file."""

    nlat: int
    nlon: int
    grid: str
    solver_steps: int  # solver steps per one-hour sample step
    mach: float
    amplitude: float  # scale of the initial anomaly: how nonlinear the dynamics are
    lmax: int  # spherical-harmonic degrees (and orders) the solver keeps: the data's band
    spinup_steps: int
    train_steps: int  # states per training/validation sample
    rollout_steps: int  # one-hour steps per test trajectory
    num_examples: int
    num_val_examples: int
    num_test_examples: int
    seeds: dict  # {"train": int, "val": int, "test": int}
    dtype: str = "float32"

    def __post_init__(self) -> None:
        # Equal seeds would draw the same initial states: a validation set that repeats training samples.
        if sorted(self.seeds) != sorted(SPLITS) or len(set(self.seeds.values())) != len(SPLITS):
            raise ValueError(f"data.seeds needs a different seed for each of {SPLITS}, got {self.seeds}")

    def split_shape(self, split: str) -> tuple:
        count = {"train": self.num_examples, "val": self.num_val_examples, "test": self.num_test_examples}[split]
        steps = self.rollout_steps + 1 if split == "test" else self.train_steps
        return (count, steps, len(CHANNELS), self.nlat, self.nlon)

    def as_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["seeds"] = {split: int(self.seeds[split]) for split in SPLITS}
        fields["format_version"] = FORMAT_VERSION
        return json.dumps(fields, sort_keys=True)

    def cache_path(self, data_root: str | os.PathLike) -> Path:
        digest = hashlib.sha256(self.as_json().encode()).hexdigest()[:16]
        return Path(data_root) / f"swe_{self.nlat}x{self.nlon}_{digest}.h5"


def make_solver(spec: DataSpec) -> BatchedShallowWaterSolver:
    solver = BatchedShallowWaterSolver(
        spec.nlat, spec.nlon, SECONDS_PER_STEP / spec.solver_steps, lmax=spec.lmax, mmax=spec.lmax, grid=spec.grid
    )
    return solver.to(getattr(torch, spec.dtype))


def generate_trajectories(spec: DataSpec, num: int, steps: int, seed: int, progress: tqdm | None = None) -> np.ndarray:
    """``num`` trajectories of ``steps`` one-hour states after the spin-up, shape (num, steps, 3, nlat, nlon)."""
    solver = make_solver(spec)
    generator = torch.Generator().manual_seed(seed)
    initial = solver.random_initial_condition(num, spec.mach, generator, spec.amplitude)
    out = np.empty((num, steps, len(CHANNELS), spec.nlat, spec.nlon), dtype=np.float32)
    total_hours = spec.spinup_steps + steps - 1
    with torch.inference_mode():
        chunk = max(1, CHUNK_POINTS // (spec.nlat * spec.nlon))
        for start in range(0, num, chunk):
            uspec = initial[start : start + chunk]
            hourly = solver.integrate(uspec, total_hours * spec.solver_steps, spec.solver_steps)
            kept = torch.cat([uspec[:, None], hourly], dim=1)[:, spec.spinup_steps :]
            states = solver.spec2grid(kept)
            if not torch.isfinite(states).all():
                raise FloatingPointError(
                    f"The shallow-water solver blew up at {spec.nlat}x{spec.nlon} with "
                    f"data.solver_steps={spec.solver_steps} per hour: increase data.solver_steps."
                )
            out[start : start + len(uspec)] = states.float().numpy()
            if progress is not None:
                progress.update(len(uspec))
    return out


def _write(spec: DataSpec, path: Path) -> None:
    """Generate every split into ``path`` (the caller renames it into place), with the training split's statistics
    and the baselines fitted to it."""
    total = sum(spec.split_shape(split)[0] for split in SPLITS)
    with tqdm(total=total, desc=f"generating {path.name}", unit="traj") as progress, h5py.File(path, "w") as file:
        for split in SPLITS:
            count, steps, *_ = spec.split_shape(split)
            states = generate_trajectories(spec, count, steps, spec.seeds[split], progress)
            chunks = (1, *states.shape[1:])
            file.create_dataset(split, data=states, chunks=chunks, fletcher32=True)
            if split == "train":  # accumulated in float64 without a float64 copy of the split
                file.attrs["mean"] = states.mean(axis=(0, 1, 3, 4), dtype=np.float64)
                file.attrs["std"] = states.std(axis=(0, 1, 3, 4), dtype=np.float64)
                file.create_dataset("climatology", data=states.mean(axis=(0, 1), dtype=np.float64))
        emulator = _fit_linear_emulator(spec, file)
        file.create_dataset("linear_emulator", data=torch.view_as_real(emulator.matrices).numpy())
        file.attrs["linear_emulator_rel_l2"] = _linear_emulator_error(emulator, file)
        file.attrs["spec"] = spec.as_json()


def _normalised(file: h5py.File, split: str) -> Iterator[torch.Tensor]:
    """``split`` of the file being written, normalised, in float64 chunks of a few MB."""
    mean = torch.from_numpy(file.attrs["mean"]).reshape(3, 1, 1)
    std = torch.from_numpy(file.attrs["std"]).reshape(3, 1, 1)
    data = file[split]
    chunk = max(1, 8 * CHUNK_POINTS // int(np.prod(data.shape[1:])))
    for start in range(0, len(data), chunk):
        yield (torch.from_numpy(data[start : start + chunk]).double() - mean) / std


def _fit_linear_emulator(spec: DataSpec, file: h5py.File) -> LinearSpectralEmulator:
    """The least-squares linear spectral emulator of the normalised training split (see `data.baselines`)."""
    return LinearSpectralEmulator(spec.nlat, spec.nlon, spec.grid, spec.lmax).fit(_normalised(file, "train"))


def _linear_emulator_error(emulator: LinearSpectralEmulator, file: h5py.File) -> np.ndarray:
    """The emulator's relative L2 error per lead and channel over the test trajectories: the data's nonlinearity."""
    total, count = 0, 0
    for trajectories in _normalised(file, "test"):
        total = total + emulator.rollout_error(trajectories) * len(trajectories)
        count += len(trajectories)
    return (total / count).numpy()


def problem_with(path: Path, spec: DataSpec) -> str | None:
    """Why the file at ``path`` cannot serve ``spec``, or None when it can."""
    try:
        with h5py.File(path, "r") as file:
            if file.attrs.get("spec") != spec.as_json():
                return "written for another data configuration"
            for split in SPLITS:
                if file[split].shape != spec.split_shape(split):
                    return f"holding a '{split}' split of the wrong shape"
            if "mean" not in file.attrs or "std" not in file.attrs:
                return "missing its normalisation statistics"
            if "climatology" not in file or "linear_emulator" not in file:
                return "missing its baselines"
    except (OSError, KeyError) as error:
        return f"unreadable ({error})"
    return None


def ensure_cached(spec: DataSpec, data_root: str | os.PathLike) -> Path:
    """Path of a complete cache file for ``spec``, generating it if needed.

    Concurrent callers wait on a lock and generate the file once; it is written
    under a temporary name and renamed when complete, so an interrupted
    generation never leaves a file that looks complete.
    """
    path = spec.cache_path(data_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with FileLock(f"{path}.lock"):
        if path.exists():
            problem = problem_with(path, spec)
            if problem is None:
                log.info("data: cache hit %s (%.2f s)", path, time.perf_counter() - started)
                log_nonlinearity(path, spec)
                return path
            log.warning("data: cache file %s is %s; regenerating it", path, problem)
            path.unlink()
        for stale in path.parent.glob(f"{path.name}.tmp*"):
            stale.unlink()
        partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            _write(spec, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    count = sum(spec.split_shape(split)[0] for split in SPLITS)
    log.info("data: generated %d trajectories into %s in %.1f s", count, path, time.perf_counter() - started)
    log_nonlinearity(path, spec)
    return path


def log_nonlinearity(path: Path, spec: DataSpec) -> None:
    """How far the data is from linear dynamics: the linear emulator's test error at 1 h and at the last lead."""
    with h5py.File(path, "r") as file:
        errors = np.asarray(file.attrs["linear_emulator_rel_l2"]).mean(axis=1)  # per lead, mean over channels
    last = min(len(errors), 20)
    log.info(
        "data: nonlinearity at data.amplitude=%g: the linear spectral emulator's test error (mean relative L2) is "
        "%.3f at 1 h and %.3f at %d h",
        spec.amplitude,
        errors[0],
        errors[last - 1],
        last,
    )


def regenerate_unreadable(spec: DataSpec, data_root: str | os.PathLike) -> Path:
    """Replace a cache file whose data fails to read (a checksum error), as ``ensure_cached`` would.

    Every DDP rank comes here when the file is corrupt: under the lock, only the
    first one finds the file still unreadable and deletes it; the others then
    find the regenerated file.
    """
    path = spec.cache_path(data_root)
    with FileLock(f"{path}.lock"):
        try:
            with h5py.File(path, "r") as file:
                for split in SPLITS:
                    for index in range(len(file[split])):  # one chunk at a time: each read checks its checksum
                        file[split][index]
        except OSError as error:
            log.warning("data: cache file %s is unreadable (%s); regenerating it", path, error)
            path.unlink(missing_ok=True)
    return ensure_cached(spec, data_root)


def read_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training split, shape (3,) each."""
    with h5py.File(path, "r") as file:
        return np.asarray(file.attrs["mean"]), np.asarray(file.attrs["std"])


def read_baselines(path: Path, spec: DataSpec, mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.nn.Module]:
    """The baselines of `data.baselines.BASELINES`, in that order, as one-hour steppers on states normalised by
    ``mean`` and ``std`` (3, 1, 1)."""
    with h5py.File(path, "r") as file:
        climatology = (torch.from_numpy(file["climatology"][()]) - mean) / std
        matrices = torch.view_as_complex(torch.from_numpy(file["linear_emulator"][()]))
    return {
        "persistence": Persistence(),
        "climatology": Climatology(climatology),
        "linear": LinearSpectralEmulator(spec.nlat, spec.nlon, spec.grid, spec.lmax, matrices),
    }
