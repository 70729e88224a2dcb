"""Shallow-water data: generated once, batched and seeded, cached in one HDF5 file.

Each split is a set of trajectories of one-hour states, shape
(num, steps, 3, nlat, nlon) in physical units (geopotential, vorticity,
divergence): training and test trajectories cover the hours a test rollout
visits (``rollout_steps + 1`` states), validation ones the validation rollout
(``val_rollout_steps + 1``). Training samples are windows of the training
trajectories (data/datamodule.py). Every trajectory starts from torch-harmonics' random initial
condition and is integrated for ``spinup_steps`` hours before its first state is
kept, because those initial conditions are far from balance: the geopotential's
spread doubles in the first hour and settles after about three.

The solver runs where ``data.device`` says (the GPU when there is one, by
default); the device is not part of the cache key, so a file made on a GPU
serves a CPU run and the other way round: the two agree to float32 rounding.
Splits stream to the file chunk by chunk, with the training split's statistics
accumulated as they go, so memory does not grow with the number of examples.

A test rollout longer than the file's test split (`evaluate.py <run> eval.rollout_steps=500`) gets a test split of
its own length in a file beside it (`long_test_cache_path`), written hour by hour: the training split, statistics
and baselines of the run are left as they are.
"""

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from data import CHANNELS, DEVICES
from data.baselines import LinearSpectralEmulator, fit_baselines, load_baselines, missing_baselines, save_baselines
from data.solver import BatchedShallowWaterSolver
from sphere.matmul import highest_matmul_precision

log = logging.getLogger(__name__)

# Bump whenever the generation code changes what a given spec produces.
FORMAT_VERSION = 5
# Grid points integrated at once (batch x nlat x nlon): on the CPU larger batches spill out of the caches and run
# slower; a GPU needs larger ones to keep busy (2**21 points is 16 states of 256x512; not yet tuned on a GPU).
CHUNK_POINTS = 2**17
GPU_CHUNK_POINTS = 2**21
SPLITS = ("train", "val", "test")
SECONDS_PER_STEP = 3600.0
# DataSpec fields whose None (the generation before they existed) stays out of the cache key.
OPTIONAL_FIELDS = ("hyperdiffusion_lmax", "initial_lmax")


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
    rollout_steps: int  # one-hour steps per training and test trajectory
    val_rollout_steps: int  # one-hour steps per validation trajectory
    num_examples: int  # training trajectories
    num_val_examples: int
    num_test_examples: int
    seeds: dict  # {"train": int, "val": int, "test": int}
    dtype: str = "float32"
    # The band whose damping rate per degree the solver applies (data/solver.py hyperdiffusion); None: lmax, the grid's
    # own (torch-harmonics' rule). A value equal to lmax is stored as None: the key names the damping applied, so the
    # fixed rule at its reference grid and torch-harmonics' rule there name the same file.
    hyperdiffusion_lmax: int | None = None
    # Degrees (and orders) of the initial draw; None: lmax, all the solver keeps. Stored as None when equal to lmax.
    initial_lmax: int | None = None

    def __post_init__(self) -> None:
        # Equal seeds would draw the same initial states: a validation set that repeats training samples.
        if sorted(self.seeds) != sorted(SPLITS) or len(set(self.seeds.values())) != len(SPLITS):
            raise ValueError(f"data.seeds needs a different seed for each of {SPLITS}, got {self.seeds}")
        if self.hyperdiffusion_lmax is not None and self.hyperdiffusion_lmax < 2:
            raise ValueError(f"a hyperdiffusion band of {self.hyperdiffusion_lmax} degrees has no degree to damp by")
        if self.initial_lmax is not None and not 1 <= self.initial_lmax <= self.lmax:
            raise ValueError(f"data.initial_lmax={self.initial_lmax} must be from 1 to data.lmax={self.lmax}")
        for name in OPTIONAL_FIELDS:
            if getattr(self, name) == self.lmax:
                object.__setattr__(self, name, None)

    def split_shape(self, split: str) -> tuple:
        count = {"train": self.num_examples, "val": self.num_val_examples, "test": self.num_test_examples}[split]
        steps = self.val_rollout_steps + 1 if split == "val" else self.rollout_steps + 1
        return (count, steps, len(CHANNELS), self.nlat, self.nlon)

    def as_json(self) -> str:
        """The cache key's text. Fields added after format 5 enter it only when set: a spec that generates what
        format 5 generated keeps its file."""
        fields = dataclasses.asdict(self)
        for name in OPTIONAL_FIELDS:
            if fields[name] is None:
                del fields[name]
        fields["seeds"] = {split: int(self.seeds[split]) for split in SPLITS}
        fields["format_version"] = FORMAT_VERSION
        return json.dumps(fields, sort_keys=True)

    def cache_path(self, data_root: str | os.PathLike) -> Path:
        digest = hashlib.sha256(self.as_json().encode()).hexdigest()[:16]
        return Path(data_root) / f"swe_{self.nlat}x{self.nlon}_{digest}.h5"


def resolve_device(device: str) -> torch.device:
    """Where the solver runs for a ``data.device`` of `data.DEVICES`: "auto" is the GPU when torch finds one."""
    if device not in DEVICES:
        raise ValueError(f"data.device={device!r} must be one of {', '.join(DEVICES)}: pass data.device=auto")
    has_gpu = torch.cuda.is_available()
    if device == "cuda" and not has_gpu:
        raise ValueError("data.device=cuda, but torch finds no CUDA GPU: pass data.device=auto or data.device=cpu")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and has_gpu) else "cpu")


def device_name(device: torch.device) -> str:
    """What a data file records of the device that made it: "cpu", or "cuda" and the GPU's name."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def make_solver(spec: DataSpec, device: str = "cpu") -> BatchedShallowWaterSolver:
    solver = BatchedShallowWaterSolver(
        spec.nlat,
        spec.nlon,
        SECONDS_PER_STEP / spec.solver_steps,
        lmax=spec.lmax,
        mmax=spec.lmax,
        grid=spec.grid,
        hyperdiffusion_lmax=spec.hyperdiffusion_lmax,
    )
    return solver.to(device=resolve_device(device), dtype=getattr(torch, spec.dtype))


def trajectory_chunks(spec: DataSpec, num: int, steps: int, seed: int, device: str = "cpu") -> Iterator[np.ndarray]:
    """``num`` trajectories of ``steps`` one-hour states after the spin-up, in order, in float32 chunks of shape
    (chunk, steps, 3, nlat, nlon), integrated on ``device`` (a ``data.device`` value).

    The initial states are drawn all at once on the CPU from one generator (they are small): a seed gives the same
    ones on every device and for every chunk size.
    """
    for hours in hourly_trajectory_chunks(spec, num, steps, seed, device):
        first = next(hours)
        states = np.empty((len(first), steps, *first.shape[1:]), dtype=np.float32)
        states[:, 0] = first
        for hour, state in enumerate(hours, 1):
            states[:, hour] = state
        yield states


def hourly_trajectory_chunks(
    spec: DataSpec, num: int, steps: int, seed: int, device: str = "cpu"
) -> Iterator[Iterator[np.ndarray]]:
    """`trajectory_chunks` one hour at a time, for splits whose chunks are too long to hold: per chunk of
    trajectories, its states hour by hour, (chunk, 3, nlat, nlon) float32 each. The same numbers as
    `trajectory_chunks`, to the bit, for any ``steps``: a longer split's first hours are a shorter one's. Take a
    chunk's hours before asking for the next chunk."""
    solver = make_solver(spec, device)
    generator = torch.Generator().manual_seed(seed)
    initial = solver.random_initial_condition(num, spec.mach, generator, spec.amplitude, spec.initial_lmax)
    points = GPU_CHUNK_POINTS if solver.lap.is_cuda else CHUNK_POINTS
    chunk = max(1, points // (spec.nlat * spec.nlon))
    for start in range(0, num, chunk):
        yield _hourly_states(solver, spec, initial[start : start + chunk], steps)


def _hourly_states(
    solver: BatchedShallowWaterSolver, spec: DataSpec, initial: torch.Tensor, steps: int
) -> Iterator[np.ndarray]:
    """The grid states of one chunk of trajectories from their spectral ``initial`` states, hour by hour (see
    `hourly_trajectory_chunks`). Each hour is computed inside the contexts below, which never outlive a step."""
    spectral = itertools.chain(
        [initial], solver.saved_states(initial, (spec.spinup_steps + steps - 1) * spec.solver_steps, spec.solver_steps)
    )
    for hour in range(spec.spinup_steps + steps):
        # A run may allow TF32 or bfloat16 for its model, never for its data.
        with torch.inference_mode(), highest_matmul_precision():
            state = next(spectral)
            if hour < spec.spinup_steps:
                continue
            grid = solver.spec2grid(state)
        if not torch.isfinite(grid).all():
            raise FloatingPointError(
                f"The shallow-water solver blew up at {spec.nlat}x{spec.nlon} with "
                f"data.solver_steps={spec.solver_steps} per hour: increase data.solver_steps."
            )
        yield grid.float().cpu().numpy()


def generate_trajectories(spec: DataSpec, num: int, steps: int, seed: int, device: str = "cpu") -> np.ndarray:
    """``num`` trajectories of ``steps`` one-hour states after the spin-up, shape (num, steps, 3, nlat, nlon), held
    whole (the training set of `data.online`)."""
    out = np.empty((num, steps, len(CHANNELS), spec.nlat, spec.nlon), dtype=np.float32)
    start = 0
    for states in trajectory_chunks(spec, num, steps, seed, device):
        out[start : start + len(states)] = states
        start += len(states)
    return out


class SplitStatistics:
    """Per-channel mean and std of trajectories given chunk by chunk, accumulated in float64.

    Each chunk's mean and sum of squared deviations are merged into the running ones as Chan, Golub and LeVeque
    merge them: the result is the whole split's to float64 rounding without the split ever held at once, where a
    running sum of squares would lose the geopotential's spread (hundreds) against its mean (1e5).
    """

    def __init__(self) -> None:
        self.count = 0  # values per channel so far
        self.mean = self.squares = 0.0

    def add(self, trajectories: np.ndarray) -> None:
        """Take in a chunk of shape (num, steps, channels, nlat, nlon)."""
        values = trajectories.astype(np.float64)
        count = values.size // values.shape[2]
        mean = values.mean(axis=(0, 1, 3, 4))
        deviations = np.subtract(values, mean[:, None, None], out=values)
        squares = np.square(deviations, out=deviations).sum(axis=(0, 1, 3, 4))
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.squares = self.squares + squares + delta**2 * (self.count * count / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.squares / self.count)


def _write(spec: DataSpec, path: Path, device: str) -> None:
    """Generate every split into ``path`` (the caller renames it into place) on ``device``, chunk by chunk, with the
    training split's statistics and every baseline of `data.baselines.BASELINES` fitted to it."""
    total = sum(spec.split_shape(split)[0] for split in SPLITS)
    with tqdm(total=total, desc=f"generating {path.name}", unit="traj") as progress, h5py.File(path, "w") as file:
        file.attrs["device"] = device_name(resolve_device(device))
        for split in SPLITS:
            shape = spec.split_shape(split)
            # One state per chunk: a training window (or a validation rollout) reads only the states it uses.
            dataset = file.create_dataset(split, shape, np.float32, chunks=(1, 1, *shape[2:]), fletcher32=True)
            statistics = SplitStatistics()
            start = 0
            for states in trajectory_chunks(spec, shape[0], shape[1], spec.seeds[split], device):
                dataset[start : start + len(states)] = states
                start += len(states)
                progress.update(len(states))
                if split == "train":
                    statistics.add(states)
            if split == "train":
                file.attrs["mean"] = statistics.mean
                file.attrs["std"] = statistics.std
        baselines = fit_baselines(spec, lambda: _normalised(file, "train"))
        save_baselines(baselines, file)
        file.attrs["linear_emulator_val_rel_l2"] = _linear_emulator_error(baselines["linear"], file)
        file.attrs["spec"] = spec.as_json()


def _normalised(file: h5py.File, split: str) -> Iterator[torch.Tensor]:
    """``split`` of the file being written, normalised, in float64 chunks of a few MB."""
    mean = torch.from_numpy(file.attrs["mean"]).reshape(len(CHANNELS), 1, 1)
    std = torch.from_numpy(file.attrs["std"]).reshape(len(CHANNELS), 1, 1)
    data = file[split]
    chunk = max(1, 8 * CHUNK_POINTS // int(np.prod(data.shape[1:])))
    for start in range(0, len(data), chunk):
        yield (torch.from_numpy(data[start : start + chunk]).double() - mean) / std


def _linear_emulator_error(emulator: LinearSpectralEmulator, file: h5py.File) -> np.ndarray:
    """The emulator's relative L2 error per lead and channel over the validation trajectories: the data's
    nonlinearity, measured where settings may be chosen (data.amplitude was), never on the test split."""
    total, count = 0, 0
    for trajectories in _normalised(file, "val"):
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
            if missing := missing_baselines(file):
                return f"missing the baselines {', '.join(missing)}"
    except (OSError, KeyError) as error:
        return f"unreadable ({error})"
    return None


def ensure_cached(spec: DataSpec, data_root: str | os.PathLike, device: str = "cpu") -> Path:
    """Path of a complete cache file for ``spec``, generating it on ``device`` (a ``data.device`` value) if needed.

    A file made on another device serves as it is (see `_generate_once` for concurrent callers).
    """
    resolve_device(device)  # a device that cannot work stops the run, cache hit or not
    path = spec.cache_path(data_root)
    started = time.perf_counter()
    if not _generate_once(path, lambda file: problem_with(file, spec), lambda partial: _write(spec, partial, device)):
        log.info("data: cache hit %s, made on %s (%.2f s)", path, made_on(path), time.perf_counter() - started)
        log_nonlinearity(path, spec)
        return path
    count = sum(spec.split_shape(split)[0] for split in SPLITS)
    log.info(
        "data: generated %d trajectories on %s into %s in %.1f s",
        count,
        made_on(path),
        path,
        time.perf_counter() - started,
    )
    log_nonlinearity(path, spec)
    return path


def long_test_cache_path(spec: DataSpec, data_root: str | os.PathLike, steps: int) -> Path:
    """The file of a test split of ``steps`` one-hour steps, longer than the one in ``spec``'s file (a long rollout of
    evaluate.py): that file's name and the test length, so that its key is ``spec`` and ``steps``."""
    main = spec.cache_path(data_root)
    return main.with_name(f"{main.stem}_test{steps}h.h5")


def ensure_long_test_cached(spec: DataSpec, data_root: str | os.PathLike, steps: int, device: str = "cpu") -> Path:
    """Path of the test split of ``spec`` with ``steps`` one-hour steps (`long_test_cache_path`), generated hour by
    hour if needed: the same seed and initial states as ``spec``'s own test split, whose states it repeats to the
    bit (see `hourly_trajectory_chunks`), then on to ``steps`` hours. Memory does not grow with ``steps``. The
    statistics and baselines stay in ``spec``'s file: this one holds the "test" split alone."""
    resolve_device(device)
    path = long_test_cache_path(spec, data_root, steps)
    shape = (spec.num_test_examples, steps + 1, len(CHANNELS), spec.nlat, spec.nlon)
    key = json.dumps({"spec": spec.as_json(), "test_rollout_steps": steps}, sort_keys=True)

    def problem(file_path: Path) -> str | None:
        try:
            with h5py.File(file_path, "r") as file:
                if file.attrs.get("spec") != key:
                    return "written for another data configuration"
                if file["test"].shape != shape:
                    return "holding a 'test' split of the wrong shape"
        except (OSError, KeyError) as error:
            return f"unreadable ({error})"
        return None

    def write(partial: Path) -> None:
        with (
            tqdm(total=shape[0], desc=f"generating {path.name}", unit="traj") as progress,
            h5py.File(partial, "w") as file,
        ):
            file.attrs["device"] = device_name(resolve_device(device))
            dataset = file.create_dataset("test", shape, np.float32, chunks=(1, 1, *shape[2:]), fletcher32=True)
            start = 0
            for hours in hourly_trajectory_chunks(spec, shape[0], shape[1], spec.seeds["test"], device):
                for hour, states in enumerate(hours):
                    dataset[start : start + len(states), hour] = states
                start += len(states)
                progress.update(len(states))
            file.attrs["spec"] = key

    started = time.perf_counter()
    if _generate_once(path, problem, write):
        log.info(
            "data: generated %d test trajectories of %d h into %s in %.1f s",
            shape[0],
            steps,
            path,
            time.perf_counter() - started,
        )
    else:
        log.info("data: cache hit %s", path)
    return path


def _generate_once(path: Path, problem: Callable[[Path], str | None], write: Callable[[Path], None]) -> bool:
    """Make sure a complete file lies at ``path``: keep the one there unless ``problem(path)`` says why it cannot
    serve, else ``write`` one. Returns whether it wrote one.

    Concurrent callers wait on a lock and generate the file once; it is written under a temporary name and renamed
    when complete, so an interrupted generation never leaves a file that looks complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():
            reason = problem(path)
            if reason is None:
                return False
            log.warning("data: cache file %s is %s; regenerating it", path, reason)
            path.unlink()
        for stale in path.parent.glob(f"{path.name}.tmp*"):
            stale.unlink()
        partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            write(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return True


def made_on(path: Path) -> str:
    """The device that generated the file at ``path`` (files from before it was recorded say so)."""
    with h5py.File(path, "r") as file:
        return str(file.attrs.get("device", "an unrecorded device"))


def log_nonlinearity(path: Path, spec: DataSpec) -> None:
    """How far the data is from linear dynamics: the linear emulator's validation error at 1 h and at the last lead."""
    with h5py.File(path, "r") as file:
        errors = np.asarray(file.attrs["linear_emulator_val_rel_l2"]).mean(axis=1)  # per lead, mean over channels
    last = min(len(errors), 20)
    log.info(
        "data: nonlinearity at data.amplitude=%g: the linear spectral emulator's validation error "
        "(mean relative L2) is %.3f at 1 h and %.3f at %d h",
        spec.amplitude,
        errors[0],
        errors[last - 1],
        last,
    )


def regenerate_unreadable(spec: DataSpec, data_root: str | os.PathLike, device: str = "cpu") -> Path:
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
    return ensure_cached(spec, data_root, device)


def read_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training split, shape (channels,) each."""
    with h5py.File(path, "r") as file:
        return np.asarray(file.attrs["mean"]), np.asarray(file.attrs["std"])


def read_baselines(path: Path, spec: DataSpec) -> dict[str, torch.nn.Module]:
    """The baselines of `data.baselines.BASELINES`, in that order, as one-hour steppers on states normalised by the
    file's training statistics (`read_stats`)."""
    with h5py.File(path, "r") as file:
        return load_baselines(file, spec)
