"""The data pipeline: solver accuracy, reproducible and disjoint splits, and a cache that survives crashes."""

import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule, Trainer
from torch_harmonics.examples import ShallowWaterSolver

from data import generate
from data.datamodule import (
    EpochSampler,
    HDF5Trajectories,
    InMemoryTrajectories,
    ShallowWaterDataModule,
    StreamedTrajectories,
)
from data.generate import (
    SPLITS,
    DataSpec,
    SplitStatistics,
    ensure_cached,
    generate_trajectories,
    long_test_cache_path,
    made_on,
    make_solver,
    problem_with,
    resolve_device,
)
from data.solver import BatchedShallowWaterSolver
from tests.conftest import compose_config

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted(path.stem for path in (REPO / "config" / "data").glob("*.yaml"))
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_spec(**changes) -> DataSpec:
    """The smallest preset's solver with a handful of short trajectories: about a second to generate."""
    fields = {
        "nlat": 32,
        "nlon": 64,
        "grid": "equiangular",
        "solver_steps": 12,
        "mach": 0.2,
        "amplitude": 10.0,
        "lmax": 11,
        "spinup_steps": 1,
        "rollout_steps": 3,
        "val_rollout_steps": 2,
        "num_examples": 8,
        "num_val_examples": 4,
        "num_test_examples": 2,
        "seeds": {"train": 0, "val": 1, "test": 2},
    }
    return DataSpec(**{**fields, **changes})


def datamodule(spec: DataSpec, data_root: Path, **options) -> ShallowWaterDataModule:
    fields = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
    del fields["dtype"], fields["hyperdiffusion_lmax"]  # the data module takes data.hyperdiffusion's rule instead
    return ShallowWaterDataModule(**fields, data_root=str(data_root), batch_size=4, **options)


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel error on the grid over the reference's deviation from its mean (the geopotential's mean is ~1e5)."""
    result, reference = result.double(), reference.double()
    deviation = reference - reference.mean(dim=(-2, -1), keepdim=True)
    return (result - reference).norm(dim=(-2, -1)) / deviation.norm(dim=(-2, -1))


def run_python(code: str, *args: str) -> subprocess.Popen:
    """Start ``python -c code args`` in the repository, logging to its stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> tuple[DataSpec, Path]:
    """One tiny cache file that the read-only tests share."""
    spec = tiny_spec()
    return spec, ensure_cached(spec, tmp_path_factory.mktemp("data"))


def copy_of(cached: tuple[DataSpec, Path], data_root: Path) -> Path:
    """The shared cache file copied into ``data_root``, for tests that damage it."""
    spec, source = cached
    path = spec.cache_path(data_root)
    path.write_bytes(source.read_bytes())
    return path


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_batched_solver_matches_torch_harmonics(dtype, tolerance):
    nlat, nlon, steps = 32, 64, 12
    lmax = math.ceil(nlat / 3)
    options = {"lmax": lmax, "mmax": lmax, "grid": "equiangular"}
    batched = BatchedShallowWaterSolver(nlat, nlon, 3600.0 / steps, **options).to(dtype)
    single = ShallowWaterSolver(nlat, nlon, 3600.0 / steps, **options).to(dtype)
    initial = batched.random_initial_condition(3, 0.2, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        result = batched.spec2grid(batched.integrate(initial, steps, steps)[:, -1])
        reference = torch.stack([single.spec2grid(single.timestep(state, steps)) for state in initial])
        moved = relative_error(batched.spec2grid(initial), reference)
    assert relative_error(result, reference).max() <= tolerance
    assert moved.min() > 0.01  # an hour changes every channel by far more than the tolerance


def preset_spec(preset: str) -> DataSpec:
    """The data that ``data=<preset>`` asks for."""
    return instantiate(compose_config([f"data={preset}"]).data).spec


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_step_is_accurate_for_one_hour(preset):
    """One hour with the preset's solver_steps is within 2% per channel of four times finer steps, at the default
    data.amplitude (the step is set by the gravity waves, whatever the amplitude)."""
    spec = preset_spec(preset)

    def one_hour(solver_steps: int) -> torch.Tensor:
        solver = make_solver(dataclasses.replace(spec, solver_steps=solver_steps))
        initial = solver.random_initial_condition(1, spec.mach, torch.Generator().manual_seed(0), spec.amplitude)
        with torch.inference_mode():
            return solver.spec2grid(solver.integrate(initial, solver_steps, solver_steps)[:, -1])

    with ThreadPoolExecutor(2) as pool:  # each run is sequential: one core each
        coarse, fine = pool.map(one_hour, (spec.solver_steps, 4 * spec.solver_steps))
    error = relative_error(coarse, fine)
    assert torch.isfinite(error).all() and error.max() <= 0.02, f"{preset}: {error.tolist()}"


def test_generation_is_deterministic(cached, tmp_path):
    spec, first = cached
    second = ensure_cached(spec, tmp_path)
    with h5py.File(first) as one, h5py.File(second) as two:
        for split in SPLITS:
            assert np.array_equal(one[split][()], two[split][()])
        assert np.array_equal(one.attrs["mean"], two.attrs["mean"])
        assert np.array_equal(one.attrs["std"], two.attrs["std"])


def test_splits_share_no_initial_state_and_no_state(cached):
    spec, path = cached
    solver = make_solver(spec)
    initial = {
        split: solver.random_initial_condition(
            spec.split_shape(split)[0], spec.mach, torch.Generator().manual_seed(spec.seeds[split]), spec.amplitude
        )
        for split in SPLITS
    }
    for split in SPLITS:
        for other in SPLITS:
            if other != split:
                assert not torch.isclose(initial[split][:, None], initial[other][None]).all(dim=(-3, -2, -1)).any()
    owner = {}
    with h5py.File(path) as file:
        for split in SPLITS:
            for state in file[split][()].reshape(-1, 3, spec.nlat, spec.nlon):
                assert owner.setdefault(state.tobytes(), split) == split, (
                    f"a {split} state is also in {owner[state.tobytes()]}"
                )


def test_equal_seeds_are_refused():
    with pytest.raises(ValueError, match="different seed"):
        tiny_spec(seeds={"train": 0, "val": 0, "test": 2})


def test_statistics_come_from_the_whole_training_split(cached, tmp_path):
    spec, path = cached
    with h5py.File(path) as file:
        train = file["train"][()].astype(np.float64)
        mean, std = file.attrs["mean"], file.attrs["std"]
        raw = {split: torch.from_numpy(file[split][()]) for split in ("val", "test")}
    np.testing.assert_allclose(mean, train.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
    np.testing.assert_allclose(std, train.std(axis=(0, 1, 3, 4)), rtol=1e-12)
    assert not np.allclose(std, train[: len(train) // 2].std(axis=(0, 1, 3, 4)), rtol=1e-3)

    module = datamodule(spec, path.parent)
    module.setup()
    mean = torch.from_numpy(mean).float().reshape(3, 1, 1)
    std = torch.from_numpy(std).float().reshape(3, 1, 1)
    for split, states in raw.items():
        # The split's own statistics differ from the training ones, so normalising with them would fail below.
        assert not torch.allclose(states.double().std(dim=(0, 1, 3, 4)), torch.from_numpy(train.std(axis=(0, 1, 3, 4))))
        torch.testing.assert_close(module.datasets[split].states, (states - mean) / std)


def test_statistics_are_merged_over_chunks_as_the_split_streams_to_the_file(tmp_path, monkeypatch):
    """Chunks of three trajectories (3, 3, 2): the statistics accumulated as they go are the whole split's."""
    spec = tiny_spec()
    monkeypatch.setattr(generate, "CHUNK_POINTS", 3 * spec.nlat * spec.nlon)
    _, steps, *_ = spec.split_shape("train")
    chunks = list(generate.trajectory_chunks(spec, spec.num_examples, steps, spec.seeds["train"]))
    assert [len(chunk) for chunk in chunks] == [3, 3, 2]
    with h5py.File(ensure_cached(spec, tmp_path)) as file:
        train = file["train"][()].astype(np.float64)
        np.testing.assert_array_equal(train, np.concatenate(chunks))
        np.testing.assert_allclose(file.attrs["mean"], train.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
        np.testing.assert_allclose(file.attrs["std"], train.std(axis=(0, 1, 3, 4)), rtol=1e-12)
        climatology = (train.mean(axis=(0, 1)) - file.attrs["mean"][:, None, None]) / file.attrs["std"][:, None, None]
        np.testing.assert_allclose(file["baselines/climatology/mean_state"][()], climatology, rtol=1e-12, atol=1e-12)


def test_chunked_statistics_keep_a_small_spread_under_a_large_mean():
    """The geopotential's spread is hundreds under a mean of 1e5; chunks of uneven sizes, merged in float64."""
    values = np.random.default_rng(0).normal(1e5, 300, size=(21, 2, 3, 4, 8)).astype(np.float32)
    statistics = SplitStatistics()
    for start, stop in ((0, 1), (1, 8), (8, 21)):
        statistics.add(values[start:stop])
    whole = values.astype(np.float64)
    np.testing.assert_allclose(statistics.mean, whole.mean(axis=(0, 1, 3, 4)), rtol=1e-14)
    np.testing.assert_allclose(statistics.std, whole.std(axis=(0, 1, 3, 4)), rtol=1e-12)


def test_auto_device_is_the_gpu_when_torch_finds_one(monkeypatch):
    for has_gpu, auto in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda has_gpu=has_gpu: has_gpu)
        assert resolve_device("auto") == torch.device(auto)
        assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="data.device=cuda, but torch finds no CUDA GPU: pass data.device=auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="data.device='gpu' must be one of auto, cpu, cuda"):
        resolve_device("gpu")


def test_a_file_made_on_one_device_serves_another(cached, monkeypatch, caplog):
    """The device is not part of the cache key: a file made on the CPU is a cache hit for a run on a GPU."""
    spec, path = cached
    assert made_on(path) == "cpu"
    modules = [datamodule(spec, path.parent, device=device) for device in ("cpu", "auto", "cuda")]
    assert len({module.path for module in modules}) == 1
    modified = path.stat().st_mtime_ns
    monkeypatch.setattr(generate, "_write", lambda spec, path, device: pytest.fail(f"regenerated on {device}"))
    with caplog.at_level(logging.INFO, logger="data.generate"):
        assert ensure_cached(spec, path.parent, "auto") == path
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine: the hit must not touch it
        assert ensure_cached(spec, path.parent, "cuda") == path
    assert caplog.text.count("cache hit") == 2 and "made on cpu" in caplog.text
    assert path.stat().st_mtime_ns == modified


def test_data_from_the_other_path_agrees_to_float32_rounding():
    """Data made on a GPU matches CPU-made data to float32 rounding. Without a GPU the float64 solver stands in for
    the other path, from the same initial states (drawn on the CPU in float32 for both devices), after the spin-up
    and three more hours. float32 resolves the geopotential (mean ~1e5) to ~1e-2, a few 1e-6 of its anomaly: measured
    1-8e-6 per channel here."""
    spec = tiny_spec(spinup_steps=4)
    reference = generate_trajectories(spec, 4, 4, seed=0, device="cpu")
    if torch.cuda.is_available():
        other = generate_trajectories(spec, 4, 4, seed=0, device="cuda")
    else:
        initial = make_solver(spec).random_initial_condition(
            4, spec.mach, torch.Generator().manual_seed(0), spec.amplitude
        )
        solver = make_solver(dataclasses.replace(spec, dtype="float64"))
        other = np.stack(list(generate._hourly_states(solver, spec, initial.to(torch.complex128), 4)), axis=1)
    error = relative_error(torch.from_numpy(other), torch.from_numpy(reference))
    assert 0 < error.max() <= 2e-5, error.amax(dim=(0, 1))


def test_data_is_made_with_full_float32_matmuls_whatever_the_run_allows(monkeypatch):
    """A run may lower the float32 matmul precision for its model (TF32 on a GPU): not for the solver, and not after."""
    spec = tiny_spec()
    precisions = []
    tendencies = BatchedShallowWaterSolver.tendencies

    def recording(*args, **kwargs):
        precisions.append(torch.get_float32_matmul_precision())
        return tendencies(*args, **kwargs)

    monkeypatch.setattr(BatchedShallowWaterSolver, "tendencies", recording)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        generate_trajectories(spec, 2, 2, seed=0)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(previous)
    assert precisions and set(precisions) == {"highest"}, "every solver step at full float32 precision"


def test_second_run_is_a_cache_hit(cached, monkeypatch, caplog):
    spec, path = cached
    modified = path.stat().st_mtime_ns
    writes = []
    monkeypatch.setattr(generate, "_write", lambda spec, path, device: writes.append(path))
    with caplog.at_level(logging.INFO, logger="data.generate"):
        assert ensure_cached(spec, path.parent) == path
    assert writes == []
    assert path.stat().st_mtime_ns == modified
    assert "cache hit" in caplog.text


def test_crash_while_writing_leaves_no_cache_file(tmp_path, monkeypatch):
    spec = tiny_spec()

    def crash_halfway(spec: DataSpec, path: Path, device: str) -> None:
        with h5py.File(path, "w") as file:
            file.create_dataset("train", data=generate_trajectories(spec, 2, 2, 0))
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "_write", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        ensure_cached(spec, tmp_path)
    assert not spec.cache_path(tmp_path).exists()
    assert list(tmp_path.glob("*.tmp*")) == []

    monkeypatch.undo()
    assert problem_with(ensure_cached(spec, tmp_path), spec) is None


KILLED_SPEC = tiny_spec(num_examples=48, spinup_steps=4)  # a second or two to generate
GENERATE = """
import json, sys
from data.generate import DataSpec, ensure_cached
ensure_cached(DataSpec(**json.loads(sys.argv[1])), sys.argv[2])
"""


def test_killed_generation_leaves_no_cache_file(tmp_path):
    """SIGKILL runs no cleanup: only the temporary file is left, and the next run replaces it."""
    path = KILLED_SPEC.cache_path(tmp_path)
    process = run_python(GENERATE, json.dumps(dataclasses.asdict(KILLED_SPEC)), str(tmp_path))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*.tmp*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the generation ended before it could be killed"
    leftovers = list(tmp_path.glob(f"{path.name}.tmp*"))
    assert len(leftovers) == 1 and not path.exists()

    assert problem_with(ensure_cached(KILLED_SPEC, tmp_path), KILLED_SPEC) is None
    assert not leftovers[0].exists()


def test_truncated_file_is_regenerated(cached, tmp_path, caplog):
    spec, _ = cached
    path = copy_of(cached, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert problem_with(path, spec).startswith("unreadable")
    with caplog.at_level(logging.INFO, logger="data.generate"):
        ensure_cached(spec, tmp_path)
    assert [record.levelname for record in caplog.records].count("WARNING") == 1
    assert problem_with(path, spec) is None


def test_flipped_bytes_are_caught_by_their_checksum_and_regenerated(cached, tmp_path, caplog):
    spec, source = cached
    path = copy_of(cached, tmp_path)
    with h5py.File(path) as file:
        chunk = file["train"].id.get_chunk_info(len(file["train"]) // 2)
    with open(path, "r+b") as file:
        file.seek(chunk.byte_offset + chunk.size // 2)
        flipped = bytes(byte ^ 0xFF for byte in file.read(8))
        file.seek(chunk.byte_offset + chunk.size // 2)
        file.write(flipped)
    assert problem_with(path, spec) is None  # the metadata is intact: only reading the data finds the damage
    with h5py.File(path) as file, pytest.raises(OSError):
        file["train"][()]

    module = datamodule(spec, tmp_path)
    with caplog.at_level(logging.WARNING):
        module.setup()
    assert "regenerating" in caplog.text
    with h5py.File(source) as original:
        expected = torch.from_numpy(original["train"][()])
    torch.testing.assert_close(module.datasets["train"].states, module.normalize_(expected))


def test_file_of_another_spec_is_regenerated(cached, tmp_path):
    spec, _ = cached
    path = copy_of(cached, tmp_path)
    with h5py.File(path, "r+") as file:
        file.attrs["spec"] = tiny_spec(mach=0.1).as_json()
    assert problem_with(path, spec) == "written for another data configuration"
    ensure_cached(spec, tmp_path)
    assert problem_with(path, spec) is None


WAIT_THEN_GENERATE = """
import json, logging, sys, time
from pathlib import Path
from data.generate import DataSpec, ensure_cached
logging.basicConfig(level=logging.INFO)
root = Path(sys.argv[2])
(root / f"ready{sys.argv[3]}").touch()
while len(list(root.glob("ready*"))) < 2:  # both processes ask at the same moment
    time.sleep(0.01)
ensure_cached(DataSpec(**json.loads(sys.argv[1])), root)
"""


def test_two_processes_asking_at_once_generate_once(tmp_path):
    spec = tiny_spec()
    processes = [
        run_python(WAIT_THEN_GENERATE, json.dumps(dataclasses.asdict(spec)), str(tmp_path), str(i)) for i in range(2)
    ]
    logs = [process.communicate()[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], logs
    assert sum(log.count("data: generated") for log in logs) == 1, logs
    assert sum(log.count("data: cache hit") for log in logs) == 1, logs
    assert problem_with(spec.cache_path(tmp_path), spec) is None


def test_trajectories_have_the_configured_lengths(cached):
    spec, path = cached
    with h5py.File(path) as file:
        # training and test trajectories cover the hours a test rollout visits; validation ones its own rollout
        assert file["train"].shape == (8, spec.rollout_steps + 1, 3, 32, 64)
        assert file["val"].shape == (4, spec.val_rollout_steps + 1, 3, 32, 64)
        assert file["test"].shape == (2, spec.rollout_steps + 1, 3, 32, 64)


def test_consecutive_states_are_one_hour_apart():
    spec = tiny_spec(spinup_steps=0)
    states = torch.from_numpy(generate_trajectories(spec, 2, 2, seed=5))
    solver = make_solver(spec)
    reference = ShallowWaterSolver(32, 64, 3600.0 / spec.solver_steps, lmax=11, mmax=11, grid="equiangular").float()
    initial = solver.random_initial_condition(2, spec.mach, torch.Generator().manual_seed(5), spec.amplitude)
    with torch.inference_mode():
        one_hour = torch.stack([reference.spec2grid(reference.timestep(state, spec.solver_steps)) for state in initial])
        assert relative_error(states[:, 0], reference.spec2grid(initial)).max() <= 1e-4
    assert relative_error(states[:, 1], one_hour).max() <= 1e-4
    # The spin-up drops whole hours from the same run: later windows continue the same hourly sequence.
    longer = generate_trajectories(spec, 2, 3, seed=5)
    assert np.array_equal(generate_trajectories(tiny_spec(spinup_steps=1), 2, 2, seed=5), longer[:, 1:])


def test_lazy_split_gives_the_same_batches_as_an_in_memory_one(cached):
    spec, path = cached
    windows = {"window_states": 3, "windows_per_epoch": 12}
    modules = {
        "memory": datamodule(spec, path.parent, **windows),
        "lazy": datamodule(spec, path.parent, in_memory_max_gb=0, **windows),
        "workers": datamodule(spec, path.parent, in_memory_max_gb=0, num_workers=2, **windows),
    }
    for module in modules.values():
        module.setup()
    assert isinstance(modules["memory"].datasets["val"], InMemoryTrajectories)
    assert isinstance(modules["lazy"].datasets["val"], HDF5Trajectories)
    shapes = {"train": (4, 3, 3, 32, 64), "val": (4, 3, 3, 32, 64), "test": (2, 4, 3, 32, 64)}
    for split, shape in shapes.items():
        batches = {name: list(getattr(module, f"{split}_dataloader")()) for name, module in modules.items()}
        assert all(isinstance(batch, torch.Tensor) and batch.shape == shape for batch in batches["memory"])
        for name in ("lazy", "workers"):
            for batch, reference in zip(batches[name], batches["memory"], strict=True):
                if split == "test":  # whole trajectories read from the file are streamed, one hour at a time
                    assert isinstance(batch, StreamedTrajectories) and batch.shape == shape, name
                    assert all(torch.equal(batch[:, hour], reference[:, hour]) for hour in range(shape[1])), name
                else:
                    assert torch.equal(batch, reference), name


def test_a_longer_test_split_continues_the_test_trajectories_in_a_file_of_its_own(cached, tmp_path):
    """A test rollout longer than the cached test split (evaluate.py <run> eval.rollout_steps=500) gets test
    trajectories of its own length from the same seed, in a file of their own: their first hours are the cached
    split's to the bit, and the cache file (training split, statistics, baselines) is left as it was."""
    spec, _ = cached
    main = copy_of(cached, tmp_path)
    written = main.stat().st_mtime_ns
    hours = spec.rollout_steps + 4
    module = datamodule(spec, tmp_path, test_rollout_steps=hours)
    module.prepare_data()
    module.setup("test")
    assert main.stat().st_mtime_ns == written, "the cache file was regenerated"
    long_path = long_test_cache_path(spec, tmp_path, hours)
    assert module.test_path == str(long_path)
    with h5py.File(main) as file, h5py.File(long_path) as long_file:
        short, long = file["test"][()], long_file["test"][()]
    assert long.shape == (spec.num_test_examples, hours + 1, 3, 32, 64)
    assert np.array_equal(long[:, : spec.rollout_steps + 1], short)
    (batch,) = module.test_dataloader()
    assert isinstance(batch, StreamedTrajectories) and batch.shape == long.shape
    for hour in (0, hours):
        assert torch.equal(batch[:, hour], module.normalize_(torch.from_numpy(long[:, hour])))
    with pytest.raises(IndexError, match=r"one hour at a time, \[:, hour\]"):
        batch[:, :2]
    long_written = long_path.stat().st_mtime_ns
    module.prepare_data()
    assert long_path.stat().st_mtime_ns == long_written, "a second evaluation reads the same file"


class SampleRecorder(LightningModule):
    """Records which training samples each epoch sees, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = defaultdict(list)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen[self.current_epoch].extend(sample.numpy().tobytes() for sample in batch)
        return self.weight * batch.mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit_two_epochs(module: ShallowWaterDataModule, root: Path, reload: int) -> dict[int, list[bytes]]:
    recorder = SampleRecorder()
    trainer = Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        reload_dataloaders_every_n_epochs=reload,
        use_distributed_sampler=False,
        default_root_dir=root,
    )
    trainer.fit(recorder, datamodule=module)
    return recorder.seen


def test_training_order_is_reshuffled_every_epoch(cached, tmp_path):
    spec, path = cached
    seen = fit_two_epochs(datamodule(spec, path.parent, max_window_start=0), tmp_path, reload=0)
    assert sorted(seen[0]) == sorted(seen[1]) and len(seen[0]) == spec.num_examples
    assert seen[0] != seen[1]


def test_windows_cover_every_start_over_epochs_reproducibly():
    """Each sample of an epoch starts at a state drawn from (seed, epoch): over epochs every start and every
    trajectory is used, an epoch's windows are the same whenever they are drawn, and DDP ranks share them out."""

    def windows(epoch: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> list[tuple[int, int]]:
        sampler = EpochSampler(64, True, seed, rank, world_size, trajectories=8, max_start=18)
        sampler.set_epoch(epoch)
        return sampler.samples()

    epochs = [windows(epoch) for epoch in range(3)]
    assert {start for samples in epochs for _, start in samples} == set(range(19))
    assert all(sorted(trajectory for trajectory, _ in samples) == sorted(list(range(8)) * 8) for samples in epochs)
    assert windows(1) == epochs[1]
    assert epochs[0] != epochs[1] and windows(1, seed=5) != epochs[1]
    assert sorted(windows(1, rank=0, world_size=2) + windows(1, rank=1, world_size=2)) == sorted(epochs[1])
    # fewer windows than trajectories: the epochs take turns through all of them
    sampler = EpochSampler(4, True, trajectories=8)
    turns = set()
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        turns |= {trajectory for trajectory, _ in sampler.samples()}
    assert turns == set(range(8))


@pytest.mark.parametrize("in_memory_max_gb", [4, 0])
def test_training_windows_are_consecutive_states_of_the_training_trajectories(cached, in_memory_max_gb):
    spec, path = cached
    module = datamodule(spec, path.parent, window_states=2, windows_per_epoch=16, in_memory_max_gb=in_memory_max_gb)
    module.setup("fit")
    loader = module.train_dataloader()
    loader.batch_sampler.sampler.set_epoch(3)
    samples = loader.batch_sampler.sampler.samples()
    assert {start for _, start in samples} == {0, 1, 2}  # 4 states per trajectory, windows of 2
    with h5py.File(path) as file:
        trajectories = module.normalize_(torch.from_numpy(file["train"][()]))
    expected = torch.stack([trajectories[trajectory, start : start + 2] for trajectory, start in samples])
    torch.testing.assert_close(torch.cat(list(loader)), expected, rtol=0, atol=0)


def test_online_mode_draws_new_training_samples_every_epoch(cached, tmp_path):
    spec, path = cached
    module = datamodule(spec, path.parent, online=True, max_window_start=0)
    seen = fit_two_epochs(module, tmp_path, reload=1)
    assert not set(seen[0]) & set(seen[1])
    for epoch in (0, 1):
        again = module._online_train_set(epoch).states[:, : module.window_states]
        assert sorted(seen[epoch]) == sorted(sample.numpy().tobytes() for sample in again)
    with h5py.File(path) as file:
        cached_train = module.normalize_(torch.from_numpy(file["train"][:, : module.window_states]))
    assert not set(seen[0]) & {sample.numpy().tobytes() for sample in cached_train}


def test_online_mode_refuses_a_trainer_that_keeps_its_first_loader(cached, tmp_path):
    spec, path = cached
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        fit_two_epochs(datamodule(spec, path.parent, online=True), tmp_path, reload=0)


def test_non_finite_states_stop_generation_and_leave_no_file(tmp_path):
    """No solver step size we tried makes these presets blow up (hyperdiffusion damps them, even at
    one step per hour); a non-finite initial amplitude drives the same detection path."""
    spec = tiny_spec(mach=math.inf)
    with pytest.raises(FloatingPointError, match="data.solver_steps"):
        ensure_cached(spec, tmp_path)
    assert not spec.cache_path(tmp_path).exists()
    assert not list(tmp_path.glob("*.tmp*"))
