"""Checks of a composed config that stop bad input before any folder, file, data or W&B run exists.

`check_config` reads only the keys it checks, so that one problem does not hide the others.
The limits on modes were measured with neuraloperator 2.0.0 and torch-harmonics 0.8.0 (see each check).
"""

import ctypes
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from custom_resolvers import device_count
from data import CHANNELS, DEVICES
from runs.folder import LAST_CHECKPOINT, SAVED_CONFIG, DamagedFileError, checkpoint_progress, saved_config
from runs.init_from import check_init_from

DATA_CHANNELS = len(CHANNELS)

# Smallest allowed value of each integer key; OPTIONAL ones may also be null.
OPTIONAL = ("training.effective_batch_size",)
INTEGER_MINIMUMS = {
    "batch_size": 1,
    "training.effective_batch_size": 1,
    "training.max_epochs": 1,
    "data.nlat": 1,
    "data.nlon": 1,
    "data.solver_steps": 1,
    "data.spinup_steps": 0,
    "data.train_steps": 2,  # one input and one target
    "data.rollout_steps": 1,
    "data.num_examples": 1,
    "data.num_val_examples": 1,
    "data.num_test_examples": 1,
    "data.num_workers": 0,
    "model.width": 1,
    "model.layers": 1,
    "trainer.num_nodes": 1,
    "checkpoint_every_n_steps": 0,
}
POSITIVE_NUMBERS = ("training.lr", "data.mach", "data.amplitude")
# On/off keys: any other value (`yes`, `1`) would silently count as on or off.
SWITCHES = ("training.compile", "data.online", "model.residual")
# Keys with a fixed set of values.
CHOICES = {"float32_matmul_precision": ("highest", "high", "medium")}
# Keys that point to folders this run writes into.
FOLDER_KEYS = ("log_dir", "data.data_root")
LEARNABLE_EMBEDDINGS = ("learnable lat", "learnable latlon")
# The overrides `resume=<run folder>` accepts: they extend the training without changing what has been trained so far.
RESUME_OVERRIDES = ("training.max_epochs", "resume")


class ConfigError(ValueError):
    """A config that cannot work; each line of the message names a key and how to fix it."""


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` listing every problem of ``cfg`` (the task config, with or without its `hydra` node)."""
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError("\n".join(f"{key} is missing (???): give it a value, e.g. {key}=<value>" for key in missing))
    problems = []
    for check in CHECKS:
        try:
            problems.extend(check(cfg))
        except OmegaConfBaseException as error:  # e.g. an interpolation that cannot be resolved
            problems.append(str(error))
    if problems:
        raise ConfigError("\n".join(problems))


def _missing_keys(node: object, prefix: str = "") -> list[str]:
    """Dotted keys whose value is `???`, outside the `hydra` node (Hydra fills its own)."""
    if isinstance(node, dict):
        items = ((f"{prefix}{key}", value) for key, value in node.items() if prefix or key != "hydra")
    elif isinstance(node, list):
        items = ((f"{prefix[:-1]}[{index}]", value) for index, value in enumerate(node))
    else:
        return []
    missing = []
    for key, value in items:
        if value == "???":
            missing.append(key)
        else:
            missing.extend(_missing_keys(value, f"{key}."))
    return missing


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sizes(cfg: DictConfig) -> Iterator[str]:
    """Counts, sizes and rates that make no sense at zero or below (or at NaN)."""
    for key, minimum in INTEGER_MINIMUMS.items():
        value = OmegaConf.select(cfg, key)
        if (value is not None or key not in OPTIONAL) and (not _is_int(value) or value < minimum):
            yield f"{key}={value!r} must be an integer >= {minimum}: pass {key}=<integer >= {minimum}>"
    for key in POSITIVE_NUMBERS:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
            yield f"{key}={value!r} must be a positive number: pass {key}=<number > 0>"
    rollout, data_rollout = OmegaConf.select(cfg, "eval.rollout_steps"), OmegaConf.select(cfg, "data.rollout_steps")
    if rollout is not None and _is_int(data_rollout) and not (_is_int(rollout) and 1 <= rollout <= data_rollout):
        yield (
            f"eval.rollout_steps={rollout!r} must be an integer from 1 to data.rollout_steps={data_rollout}: "
            "lower eval.rollout_steps or raise data.rollout_steps"
        )
    train_rollout, train_steps = (
        OmegaConf.select(cfg, "training.rollout_steps"),
        OmegaConf.select(cfg, "data.train_steps"),
    )
    if _is_int(train_steps) and not (_is_int(train_rollout) and 1 <= train_rollout < train_steps):
        yield (
            f"training.rollout_steps={train_rollout!r} must be an integer from 1 to data.train_steps - 1 = "
            f"{train_steps - 1}: lower training.rollout_steps or set data.train_steps={train_rollout}+1"
        )


def _switches(cfg: DictConfig) -> Iterator[str]:
    for key in SWITCHES:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, bool):
            yield f"{key}={value!r} must be True or False: pass {key}=True or {key}=False"


def _choices(cfg: DictConfig) -> Iterator[str]:
    for key, values in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in values:
            yield f"{key}={value!r} must be one of {', '.join(values)}: pass e.g. {key}={values[0]}"


def _batches(cfg: DictConfig) -> Iterator[str]:
    """The accumulation resolver's batch split, and at least one full training batch per epoch."""
    batch_size, examples = OmegaConf.select(cfg, "batch_size"), OmegaConf.select(cfg, "data.num_examples")
    effective = OmegaConf.select(cfg, "training.effective_batch_size")
    if not all(_is_int(value) and value > 0 for value in (batch_size, examples, effective or 1)):
        return  # reported by _sizes
    try:
        OmegaConf.select(cfg, "trainer.accumulate_grad_batches")
    except OmegaConfBaseException as error:
        yield str(error.__cause__ or error)  # the resolver's own message names the keys and the fix
    processes = _processes(cfg)
    per_step = batch_size * processes
    if examples < per_step:
        yield (
            f"data.num_examples={examples} is less than one batch (batch_size={batch_size} on each of "
            f"{processes} device(s)), so no training step would run: "
            "raise data.num_examples or lower batch_size"
        )
    if processes > 1:  # each process of a multi-device run validates and tests its own share of the examples
        for key in ("data.num_val_examples", "data.num_test_examples"):
            value = OmegaConf.select(cfg, key)
            if _is_int(value) and 0 < value < processes:
                yield (
                    f"{key}={value} leaves some of the {processes} devices (trainer.devices x trainer.num_nodes) "
                    f"without an example: raise {key} to at least {processes} or lower trainer.devices"
                )


def _processes(cfg: DictConfig) -> int:
    """How many processes share the batches: trainer.devices x trainer.num_nodes (1 where that is unknown)."""
    try:
        devices = device_count(OmegaConf.select(cfg, "trainer.devices"))
    except ValueError:
        return 1  # reported by the accumulation resolver
    nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
    return devices * (nodes if _is_int(nodes) and nodes > 0 else 1)


def _data_device(cfg: DictConfig) -> Iterator[str]:
    """data.device must name where the solver can run: cuda needs a GPU (an absent key is the data module's auto)."""
    device = OmegaConf.select(cfg, "data.device", default="auto")
    if device not in DEVICES:
        yield f"data.device={device!r} must be one of {', '.join(DEVICES)}: pass data.device=auto"
    elif device == "cuda" and not cuda_gpu_visible():
        yield (
            "data.device=cuda, but this machine has no CUDA GPU (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides "
            "them): pass data.device=auto (the GPU when there is one) or data.device=cpu"
        )


def cuda_gpu_visible() -> bool:
    """Whether the NVIDIA driver is installed and CUDA_VISIBLE_DEVICES leaves a GPU to it, as torch's CUDA needs.

    Found without importing torch (seconds) and without initialising CUDA (a process forked later could not use it):
    loading the driver's library initialises nothing.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.split(",")[0].strip() in ("", "-1"):
        return False
    for library in ("libcuda.so.1", "nvcuda.dll"):
        try:
            ctypes.CDLL(library)
        except OSError:
            continue
        return True
    return False


def _model(cfg: DictConfig) -> Iterator[str]:
    """The network must fit the data: its channels, its input grid and the modes the grid resolves."""
    channels = OmegaConf.select(cfg, "model.channels")
    if channels != DATA_CHANNELS:
        yield (
            f"model.channels={channels!r}, but the data has {DATA_CHANNELS} channels "
            f"({', '.join(CHANNELS)}): pass model.channels={DATA_CHANNELS}"
        )
    else:
        # every network also gets sin(latitude) as an input channel (models/latitude.py)
        for key, wanted in (("in_channels", DATA_CHANNELS + 1), ("in_chans", DATA_CHANNELS + 1)):
            value = OmegaConf.select(cfg, f"model.net.{key}")
            if value is not None and value != wanted:
                yield (
                    f"model.net.{key}={value!r} must be {wanted}, the data's {DATA_CHANNELS} channels and "
                    "sin(latitude): drop the override"
                )
        for key in ("out_channels", "out_chans"):
            value = OmegaConf.select(cfg, f"model.net.{key}")
            if value is not None and value != DATA_CHANNELS:
                yield f"model.net.{key}={value!r} must match the data's {DATA_CHANNELS} channels: drop the override"
    nlat, nlon = OmegaConf.select(cfg, "data.nlat"), OmegaConf.select(cfg, "data.nlon")
    if not (_is_int(nlat) and _is_int(nlon) and nlat > 0 and nlon > 0):
        return  # reported by _sizes
    yield from _modes(cfg, nlat, nlon)
    yield from _torch_harmonics_grid(cfg, nlat, nlon)


def _modes(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """neuraloperator's FNO and SFNO: n_modes[0] <= nlat and n_modes[1] <= nlon.

    Measured: beyond these limits FNO silently ignores the extra weights; SFNO silently computes spherical-harmonic
    degrees >= nlat (aliased, not resolvable by nlat latitudes) and crashes once n_modes[1] // 2 > nlon // 2 + 1.
    SFNO keeps n_modes[1] // 2 orders, so n_modes[1] = 1 fails (an assertion in torch-harmonics).
    """
    n_modes = OmegaConf.select(cfg, "model.net.n_modes")
    if n_modes is None:
        return
    modes = list(n_modes) if OmegaConf.is_list(n_modes) else [n_modes]
    spherical = str(OmegaConf.select(cfg, "model.net._target_", default="")).endswith("SFNO")
    smallest = [1, 2 if spherical else 1]
    if len(modes) != 2 or not all(_is_int(mode) and mode >= low for mode, low in zip(modes, smallest, strict=True)):
        yield (
            f"model.net.n_modes={modes} must be two integers [latitude, longitude], at least {smallest}: "
            f"pass e.g. model.net.n_modes=[{nlat // 2},{nlon // 2}]"
        )
    elif modes[0] > nlat or modes[1] > nlon:
        name = "SFNO" if spherical else "FNO"
        yield (
            f"model.net.n_modes={modes} asks the {name} for more modes than the {nlat}x{nlon} data resolves "
            f"(n_modes[0] <= data.nlat={nlat}, n_modes[1] <= data.nlon={nlon}): "
            f"pass model.net.n_modes=[{min(modes[0], nlat)},{min(modes[1], nlon)}] or a finer data=..."
        )


def _torch_harmonics_grid(cfg: DictConfig, nlat: int, nlon: int) -> Iterator[str]:
    """torch-harmonics' SFNO: built for one grid (img_size), and its learnable embeddings need scale_factor 1.

    Measured with 0.8.0: a wrong img_size or a learnable embedding at scale_factor > 1 crashes in the first forward
    pass (tensor size mismatch), that is after the data has been generated.
    """
    img_size = OmegaConf.select(cfg, "model.net.img_size")
    if img_size is not None and list(img_size) != [nlat, nlon]:
        yield (
            f"model.net.img_size={list(img_size)} does not match the data grid "
            f"[data.nlat, data.nlon]=[{nlat}, {nlon}]: drop the override (it follows the data by default)"
        )
    scale_factor = OmegaConf.select(cfg, "model.net.scale_factor")
    if scale_factor is None:
        return
    if not _is_int(scale_factor) or scale_factor < 1:
        yield f"model.net.scale_factor={scale_factor!r} must be an integer >= 1: pass e.g. model.net.scale_factor=1"
    elif scale_factor > 1 and (pos_embed := OmegaConf.select(cfg, "model.net.pos_embed")) in LEARNABLE_EMBEDDINGS:
        yield (
            f"model.net.pos_embed='{pos_embed}' only works with "
            f"model.net.scale_factor=1 (got {scale_factor}): pass model.net.scale_factor=1 or another pos_embed"
        )


def _folders(cfg: DictConfig) -> Iterator[str]:
    """The output and data folders must be creatable and writable."""
    for key in FOLDER_KEYS:
        path = OmegaConf.select(cfg, key)
        problem = unwritable(str(path))
        if problem:
            name = _set_by(cfg, key)
            yield f"{name}={path} cannot be written: {problem}: choose another {name}"


def unwritable(path: str) -> str | None:
    """Why ``path`` cannot be created or written to, found without creating anything; None when it can."""
    folder = Path(path).absolute()
    try:
        while not folder.exists():
            folder = folder.parent
    except OSError as error:
        return f"{error.filename} cannot be read ({error.strerror})"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def _set_by(cfg: DictConfig, key: str) -> str:
    """The key a user sets to change ``key``: the target of a plain `${other}` interpolation, else ``key``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    raw = OmegaConf.to_container(parent, resolve=False)[leaf]
    match = re.fullmatch(r"\$\{([\w.]+)\}", str(raw))
    return match.group(1) if match else key


def override_key(override: str) -> str:
    """The key of a command-line override: `+a.b=1` -> `a.b`."""
    return re.match(r"[~+]*([^=]*)", override).group(1)


def _resume(cfg: DictConfig) -> Iterator[str]:
    """`resume=<folder>` must name a run with a readable config and checkpoint, and come without overrides that
    change its config.

    The overrides and the run mode are read from the `hydra` node; a config without one skips those checks.
    """
    run = OmegaConf.select(cfg, "resume")
    if run is None:
        return
    if not (Path(run) / SAVED_CONFIG).is_file():
        yield f"resume={run} is not a run folder (it has no {SAVED_CONFIG}): pass the folder of the run to continue"
        return
    if not (Path(run) / LAST_CHECKPOINT).is_file():
        yield (
            f"resume={run} has no {LAST_CHECKPOINT} to continue from (it stopped before its first checkpoint): "
            "start the run again instead"
        )
    else:
        yield from _damaged(lambda: checkpoint_progress(Path(run) / LAST_CHECKPOINT))
    yield from _damaged(lambda: saved_config(Path(run)))
    overrides = OmegaConf.select(cfg, "hydra.overrides.task", default=[])
    refused = [override for override in overrides if override_key(override) not in RESUME_OVERRIDES]
    if refused:
        yield (
            "resume continues a run with the config it was started with; the only override it accepts is "
            f"training.max_epochs (to train longer): drop {' '.join(refused)}, or start a new run with them"
        )
    if OmegaConf.select(cfg, "hydra.mode") == RunMode.MULTIRUN:
        yield "resume continues one run: run it without -m (--multirun)"


def _damaged(read: Callable[[], object]) -> Iterator[str]:
    try:
        read()
    except DamagedFileError as error:
        yield str(error)


CHECKS: tuple[Callable[[DictConfig], Iterator[str]], ...] = (
    _sizes,
    _switches,
    _choices,
    _batches,
    _data_device,
    _model,
    _folders,
    _resume,
    check_init_from,
)
