"""Lightning DataModule over the cached shallow-water trajectories."""

import logging

import h5py
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from data import CHANNELS, hyperdiffusion_band
from data.generate import (
    DataSpec,
    ensure_cached,
    ensure_long_test_cached,
    generate_trajectories,
    long_test_cache_path,
    read_baselines,
    read_stats,
    regenerate_unreadable,
)

log = logging.getLogger(__name__)

# The splits each Lightning stage reads; any other stage (None, "predict") loads all three.
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


class EpochSampler(Sampler):
    """This rank's samples of an epoch, each a (trajectory, first state) pair, reshuffled per epoch from
    ``seed + epoch``.

    Sample i of epoch e is trajectory (e * size + i) % ``trajectories`` (each trajectory once when they are as many
    as the samples; more samples than trajectories take each several times, fewer cycle through them over epochs),
    starting at a state drawn uniformly from 0 to ``max_start`` by a generator seeded with (seed, e): a training
    window. Seeding by epoch (rather than from the global RNG) makes every epoch's order and windows reproducible,
    also after a resume and on every DDP rank. It goes inside a plain ``BatchSampler``: Lightning calls
    ``set_epoch`` only on ``DataLoader.sampler`` and ``DataLoader.batch_sampler.sampler``, never on a custom batch
    sampler. ``start`` skips the first samples of the next iteration only (set by `ResumableLoader`).
    """

    def __init__(
        self,
        size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        trajectories: int | None = None,
        max_start: int = 0,
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.trajectories = size if trajectories is None else trajectories
        self.max_start = max_start
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)[self.rank :: self.world_size]
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        per_rank = self.size // self.world_size
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def samples(self) -> list[tuple[int, int]]:
        """This rank's (trajectory, first state) pairs of the epoch, in order."""
        indices = self._indices().numpy()
        trajectories = (self.epoch * self.size + indices) % self.trajectories
        if self.max_start == 0:
            return [(int(trajectory), 0) for trajectory in trajectories]
        starts = np.random.default_rng([self.seed, self.epoch]).integers(0, self.max_start + 1, self.size)
        return list(zip(trajectories.tolist(), starts[indices].tolist(), strict=True))

    def __iter__(self):
        start, self.start = self.start, 0
        return iter(self.samples()[start:])

    def __len__(self) -> int:
        """The whole epoch, also while ``start`` skips part of it: Lightning counts a resumed epoch's batches
        from where it stopped."""
        return len(self._indices())


class ResumableLoader(DataLoader):
    """A loader that can be checkpointed within an epoch and resumed at the next unseen batch.

    Lightning, resuming within an epoch, iterates the loader from the start again and only counts the batches
    already done: a resumed run would train on the epoch's first batches twice and never see its last ones.
    `load_state_dict()` makes the next iteration of the saved epoch skip the batches already handed out. The data
    module saves and restores this state; Lightning does it too (it saves the state of loaders with a
    `state_dict()`), but restores it only into a loader built after loading the checkpoint, and
    `configure_optimizers` builds ours before (`estimated_stepping_batches`). Needs a ``BatchSampler`` over an
    `EpochSampler`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches = 0  # batches handed out in the epoch being iterated
        self._resume: dict[str, int] | None = None

    def __iter__(self):
        # A generator: this runs at the first batch, after Lightning's set_epoch for the epoch.
        sampler = self.batch_sampler.sampler
        resume, self._resume = self._resume, None
        self.batches = resume["batches"] if resume and resume["epoch"] == sampler.epoch else 0
        sampler.start = self.batches * self.batch_sampler.batch_size
        for batch in super().__iter__():
            self.batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.sampler.epoch, "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)


class InMemoryTrajectories(Dataset):
    """Normalised trajectories held as one tensor; a batch of (trajectory, first state) samples of ``length``
    states each (None: the whole trajectories) is a single indexing operation."""

    def __init__(self, states: torch.Tensor, length: int | None = None) -> None:
        self.states = states  # (num, steps, 3, nlat, nlon)
        self.length = states.shape[1] if length is None else length

    def __len__(self) -> int:
        return len(self.states)

    def __getitems__(self, samples: list[tuple[int, int]]) -> torch.Tensor:
        trajectories, starts = torch.tensor(samples, device=self.states.device).T
        hours = starts[:, None] + torch.arange(self.length, device=self.states.device)
        return self.states[trajectories[:, None], hours]


class HDF5Trajectories(Dataset):
    """Trajectories read from the cache file on access, for splits too large for memory: a (trajectory, first
    state) sample reads its ``length`` states (None: the whole trajectory), one chunk per state. ``streamed``: a
    batch of whole trajectories is a `StreamedTrajectories` that reads one hour at a time (the test split).

    The file is opened lazily in each process, so DataLoader workers work.
    """

    def __init__(
        self,
        path: str,
        split: str,
        mean: torch.Tensor,
        std: torch.Tensor,
        length: int | None = None,
        streamed: bool = False,
    ) -> None:
        self.path, self.split, self.mean, self.std, self.streamed = path, split, mean, std, streamed
        with h5py.File(path, "r") as file:
            self.num, steps, *self.state_shape = file[split].shape  # state: (3, nlat, nlon)
        self.length = steps if length is None else length
        self._file = None

    def __len__(self) -> int:
        return self.num

    def __getitems__(self, samples: list[tuple[int, int]]) -> "torch.Tensor | StreamedTrajectories":
        if self.streamed:
            return StreamedTrajectories(self.path, self.split, [trajectory for trajectory, _ in samples], self)
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        data = self._file[self.split]
        states = np.stack([data[trajectory, start : start + self.length] for trajectory, start in samples])
        return (torch.from_numpy(states) - self.mean) / self.std


class StreamedTrajectories:
    """A batch of whole trajectories of the cache file, (batch, states, 3, nlat, nlon), left in the file: ``[:, hour]``
    reads that hour's states of the batch, normalised, on the batch's device (``to``). A test rollout of any length
    holds one hour of the truth at a time. Pickles without its open file (for loader workers)."""

    def __init__(self, path: str, split: str, trajectories: list[int], source: HDF5Trajectories) -> None:
        if list(trajectories) != sorted(set(trajectories)):
            raise ValueError(f"streamed trajectories must be increasing (h5py reads them so), got {trajectories}")
        self.path, self.split, self.trajectories = path, split, list(trajectories)
        self.mean, self.std = source.mean, source.std
        self.shape = (len(trajectories), source.length, *source.state_shape)
        self.device = torch.device("cpu")
        self._file = None

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, index: tuple[slice, int]) -> torch.Tensor:
        """``[:, hour]`` -> (batch, 3, nlat, nlon)."""
        everything, hour = index if isinstance(index, tuple) and len(index) == 2 else (None, None)
        if everything != slice(None) or not isinstance(hour, int):
            raise IndexError(f"streamed trajectories read one hour at a time, [:, hour]; got {index!r}")
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        states = torch.from_numpy(self._file[self.split][self.trajectories, hour])
        return ((states - self.mean) / self.std).to(self.device)

    def to(self, device: torch.device | str, **_) -> "StreamedTrajectories":
        """Where the states it reads go (Lightning moves a batch with ``to``)."""
        self.device = torch.device(device)
        return self

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


def _batch_as_is(batch: torch.Tensor) -> torch.Tensor:
    return batch


class ShallowWaterDataModule(LightningDataModule):
    """Train/val/test trajectories of the shallow-water equations, normalised per channel.

    A batch has shape (batch, steps, 3, nlat, nlon). Training: ``windows_per_epoch`` windows of ``window_states``
    consecutive states per epoch, from the ``num_examples`` training trajectories (``rollout_steps + 1`` states,
    the hours a test rollout visits), each starting at a random state from 0 to ``max_window_start`` (None: the
    last one a window fits in), redrawn every epoch (`EpochSampler`). Validation: whole trajectories of
    ``val_rollout_steps + 1`` states; test: ``rollout_steps + 1``, or ``test_rollout_steps + 1`` where that is
    longer: then the test split comes from a file of its own (`data.generate.ensure_long_test_cached`), the same
    trajectories continued, and the training split, its statistics and baselines stay those of ``rollout_steps``
    (a long evaluation of a trained run). A test split read from a file (a long one, or one over
    ``in_memory_max_gb``) comes in batches of `StreamedTrajectories`, read one hour at a time.

    ``hyperdiffusion`` ("grid" or "fixed", `data.HYPERDIFFUSION_RULES`) chooses whose damping the solver applies: the
    grid's own, or that of the grid named ``hyperdiffusion_reference`` (e.g. "32x64"); the initial states are drawn in
    ``initial_lmax`` degrees, by default that damping's band (at most ``lmax``): under "fixed", every grid integrates
    the reference's equation from the reference's initial states (docs/data.md).
    """

    def __init__(
        self,
        nlat: int,
        nlon: int,
        grid: str,
        solver_steps: int,
        mach: float,
        amplitude: float,
        lmax: int,
        spinup_steps: int,
        rollout_steps: int,
        val_rollout_steps: int,
        num_examples: int,
        num_val_examples: int,
        num_test_examples: int,
        seeds: dict,
        data_root: str,
        batch_size: int,
        window_states: int = 2,
        windows_per_epoch: int | None = None,
        max_window_start: int | None = None,
        online: bool = False,
        in_memory_max_gb: float = 4.0,
        num_workers: int = 0,
        device: str = "auto",
        hyperdiffusion: str = "grid",
        hyperdiffusion_reference: str = "32x64",
        initial_lmax: int | None = None,
        test_rollout_steps: int | None = None,
    ) -> None:
        super().__init__()
        damped = hyperdiffusion_band(hyperdiffusion, hyperdiffusion_reference, lmax)
        self.spec = DataSpec(
            nlat=nlat,
            nlon=nlon,
            grid=grid,
            solver_steps=solver_steps,
            mach=mach,
            amplitude=amplitude,
            lmax=lmax,
            spinup_steps=spinup_steps,
            rollout_steps=rollout_steps,
            val_rollout_steps=val_rollout_steps,
            num_examples=num_examples,
            num_val_examples=num_val_examples,
            num_test_examples=num_test_examples,
            seeds={split: int(seed) for split, seed in dict(seeds).items()},
            hyperdiffusion_lmax=damped,
            initial_lmax=min(damped, lmax) if initial_lmax is None else initial_lmax,
        )
        self.data_root = data_root
        self.band_limit = lmax  # the data's band edge (degrees the solver keeps), for the test's spectra and invariants
        self.batch_size = batch_size
        self.window_states = window_states
        self.windows_per_epoch = num_examples if windows_per_epoch is None else windows_per_epoch
        last_start = rollout_steps + 1 - window_states
        self.max_window_start = last_start if max_window_start is None else max_window_start
        self.online = online
        self.in_memory_max_bytes = in_memory_max_gb * 2**30
        self.num_workers = num_workers
        self.solver_device = device  # where data is generated (`data.DEVICES`); not part of the cache key
        self.path = str(self.spec.cache_path(data_root))
        # Hours of the test trajectories: beyond the main file's, a file of their own.
        self.test_rollout_steps = rollout_steps if test_rollout_steps is None else test_rollout_steps
        self.long_test = self.test_rollout_steps > rollout_steps
        self.test_path = (
            str(long_test_cache_path(self.spec, data_root, self.test_rollout_steps)) if self.long_test else self.path
        )
        self.datasets: dict[str, Dataset] = {}
        self.mean = self.std = None
        self.baselines: dict[str, torch.nn.Module] = {}  # `data.baselines.BASELINES`, after setup
        self.train_loader: ResumableLoader | None = None
        self._train_loader_state: dict[str, int] | None = None  # from a checkpoint being resumed

    def prepare_data(self) -> None:
        ensure_cached(self.spec, self.data_root, self.solver_device)
        if self.long_test:
            ensure_long_test_cached(self.spec, self.data_root, self.test_rollout_steps, self.solver_device)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits ``stage`` needs (a cached file's training split is loaded only to train)."""
        splits = STAGE_SPLITS.get(stage, ("train", "val", "test"))
        missing = [split for split in splits if split not in self.datasets]
        if not missing:
            return
        try:
            self._load(missing)
        except OSError as error:
            log.warning("data: reading %s failed (%s)", self.path, error)
            regenerate_unreadable(self.spec, self.data_root, self.solver_device)
            self._load(missing)

    def _load(self, splits: list[str]) -> None:
        mean, std = read_stats(self.path)
        self.mean = torch.from_numpy(mean).float().reshape(len(CHANNELS), 1, 1)
        self.std = torch.from_numpy(std).float().reshape(len(CHANNELS), 1, 1)
        self.baselines = read_baselines(self.path, self.spec)
        with h5py.File(self.path, "r") as file:
            for split in splits:
                length = self.window_states if split == "train" else None
                if split == "test" and self.long_test:  # never loaded whole
                    self.datasets[split] = HDF5Trajectories(self.test_path, split, self.mean, self.std, streamed=True)
                elif file[split].size * 4 > self.in_memory_max_bytes:
                    streamed = split == "test"
                    self.datasets[split] = HDF5Trajectories(self.path, split, self.mean, self.std, length, streamed)
                else:
                    states = self.normalize_(torch.from_numpy(file[split][()]))
                    self.datasets[split] = InMemoryTrajectories(states.to(self._batch_device()), length)

    def _batch_device(self) -> torch.device:
        """Where in-memory splits live: on the GPU the run trains on (no copy per batch), unless loader workers,
        which cannot share a GPU's memory, assemble the batches."""
        if self.trainer is None or self.num_workers > 0:
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    def normalize_(self, states: torch.Tensor) -> torch.Tensor:
        """Normalise ``states`` in place: a split is hundreds of MB, and a copy of it costs more than reading it."""
        return states.sub_(self.mean.to(states)).div_(self.std.to(states))

    def _online_train_set(self, epoch: int) -> Dataset:
        """Fresh training trajectories for ``epoch``, seeded by (train seed, epoch)."""
        seed = int(np.random.SeedSequence([self.spec.seeds["train"], epoch]).generate_state(1)[0])
        _, steps, *_ = self.spec.split_shape("train")
        states = generate_trajectories(self.spec, self.spec.num_examples, steps, seed, self.solver_device)
        states = self.normalize_(torch.from_numpy(states)).to(self._batch_device())
        return InMemoryTrajectories(states, self.window_states)

    def _loader(self, dataset: Dataset, training: bool) -> ResumableLoader:
        """Training: this epoch's windows in a new order; otherwise every trajectory whole, in order."""
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        windows = {"trajectories": len(dataset), "max_start": self.max_window_start} if training else {}
        size = self.windows_per_epoch if training else len(dataset)
        sampler = EpochSampler(size, training, self.spec.seeds["train"], rank, world_size, **windows)
        return ResumableLoader(
            dataset,
            batch_sampler=BatchSampler(sampler, self.batch_size, drop_last=training),
            collate_fn=_batch_as_is,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Worker seeds from its own stream: iterating must not draw from the global RNG, whose state a
            # resume restores (runs.lightning_callbacks.RNGState) for the training steps.
            generator=torch.Generator().manual_seed(self.spec.seeds["train"]),
        )

    def state_dict(self) -> dict:
        """Where training is in its epoch, so that a resumed run goes on at the next unseen batch."""
        return {} if self.train_loader is None else {"train_loader": self.train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Kept for every training loader built from now on: each uses it only if it iterates the saved epoch."""
        self._train_loader_state = state_dict.get("train_loader")
        if self.train_loader is not None and self._train_loader_state is not None:
            self.train_loader.load_state_dict(self._train_loader_state)

    def train_dataloader(self) -> DataLoader:
        self.train_loader = self._train_loader()
        if self._train_loader_state is not None:
            self.train_loader.load_state_dict(self._train_loader_state)
        return self.train_loader

    def _train_loader(self) -> ResumableLoader:
        if not self.online:
            return self._loader(self.datasets["train"], training=True)
        if self.trainer is not None and self.trainer.reload_dataloaders_every_n_epochs != 1:
            # Otherwise Lightning builds the training loader once per fit: every epoch would see epoch 0's data.
            raise ValueError(
                "data.online=True draws new training data each time the training loader is built: "
                "set trainer.reload_dataloaders_every_n_epochs=1."
            )
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return self._loader(self._online_train_set(epoch), training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], training=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], training=False)
