"""OmegaConf resolvers used by the configs in ``config/``.

Importing this module registers them; importing it again (tests, multiruns)
is harmless because each registration replaces the previous one. Every resolver only computes a value: nothing is
created while a config is resolved (`--cfg job --resolve`); the run folder is created when the run starts
(`runs.hydra_callbacks.ClaimRunFolder`).
"""

import hashlib
import math
import os
import re

from omegaconf import ListConfig, OmegaConf

from data import CHANNELS, band_limit

DEBUG_DIR = "debug"
# Of the 255 bytes a file name may have: the rest leaves room for the "_2", "_3"... of runs.folder.claim
MAX_NAME_BYTES = 240
_DROPPED = re.compile(r"[\"'\[\](){}]")  # quotes and brackets of override values
_UNSAFE = re.compile(r"[^A-Za-z0-9._,=+~-]+")  # "/", spaces, ":", "*", non-ASCII...


def output_dir(scheme: str, debug: bool) -> str:
    """The run's folder below ``log_dir``: the dated scheme, or the one debug folder."""
    if not isinstance(debug, bool):
        raise ValueError(f"debug must be True or False, got {debug!r}: pass debug=True or debug=False")
    return DEBUG_DIR if debug else scheme


def safe_dirname(name: str) -> str:
    """``name`` as one flat, portable folder name, whatever the override values hold.

    Quotes and brackets are dropped; every other run of characters outside ``A-Za-z0-9._,=+~-`` (a ``/`` that
    would nest folders, spaces...) becomes one ``-``. A name longer than MAX_NAME_BYTES is cut and ends with a
    hash of the full name, so that different override lists keep different names (the full list is in the run's
    ``.hydra/overrides.yaml``).
    """
    safe = _UNSAFE.sub("-", _DROPPED.sub("", name))
    if len(safe) <= MAX_NAME_BYTES:  # ASCII only: one byte per character
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{safe[: MAX_NAME_BYTES - len(digest) - 1]}_{digest}"


def repo_root() -> str:
    """The repository's root folder (this module lies there): outputs/ and cache/ are anchored at it, not at the
    folder a command starts in, so `python ~/proj/train.py` from anywhere uses the project's data cache."""
    return os.path.dirname(os.path.abspath(__file__))


def on_resume(resume: str | None, fresh: object, resumed: object) -> object:
    """``resumed`` when the run continues an earlier one (`resume=<run folder>`), else ``fresh``.

    For Hydra settings that must differ on a resume, e.g. the log file is appended to, not replaced.
    """
    return fresh if resume is None else resumed


def prepend_underscore(text: str) -> str:
    """'' stays ''; anything else gets a leading '_' (no trailing '_' when there are no overrides)."""
    return f"_{text}" if text else ""


def on_debug(debug: bool, debugging: object, value: object) -> object:
    """``debugging`` in a debug run (`debug=True`), else ``value``: what debug=True changes is written in the
    config next to what it changes (the trainer's limits, the W&B mode)."""
    return debugging if debug is True else value


def abspath(path: str | None) -> str | None:
    """The absolute path; None (the run folder outside a run: `--cfg job --resolve`) stays None."""
    return None if path is None else os.path.abspath(path)


def sweep_name(mode: object, output_dir: str | None) -> str | None:
    """The sweep folder's name in a multirun job (its run folder's parent), else None: the W&B group of a sweep."""
    if getattr(mode, "name", mode) != "MULTIRUN" or output_dir is None:
        return None
    return os.path.basename(os.path.dirname(output_dir))


def process_rank() -> int:
    """The global rank of this process in a multi-process (DDP) run, 0 otherwise: read from the environment as
    Lightning's ``rank_zero_only`` reads it (its launcher's LOCAL_RANK, SLURM's SLURM_PROCID, torchrun's RANK),
    so that it is known while the config is composed, before Lightning is imported."""
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def on_rank_zero(on_zero: object, elsewhere: object) -> object:
    """``on_zero`` in the process of rank 0 (the only one of a single-process run), ``elsewhere`` in the others.

    For what only rank 0 of a multi-process run writes: the run's train.log and .hydra/ files. A list comes back as
    a ListConfig, which `OmegaConf.resolve` (`--cfg all --resolve`) can put in place of the interpolation.
    """
    value = on_zero if process_rank() == 0 else elsewhere
    return OmegaConf.create(value) if isinstance(value, list) else value


def rank_prefix() -> str:
    """'' on rank 0; '[rank N] ' on the other ranks of a multi-process run, in front of their console messages."""
    rank = process_rank()
    return f"[rank {rank}] " if rank else ""


def log_file_mode(debug: bool) -> str:
    """The mode train.log is opened with: the debug folder is reused, so its log is replaced ('w'); every other run
    appends ('a'). A new run's folder is new (runs.folder.claim), so appending only matters for a run that goes on in
    its folder: `resume=<run folder>`, or a sweep job requeued by SLURM."""
    return "w" if debug else "a"


def isdist(devices) -> bool:
    """Whether a Lightning ``devices`` value means more than one process; -1 (every device) counts as several."""
    return devices in (-1, "-1") or device_count(devices) > 1


def device_count(devices) -> int:
    """The number of processes per node that a Lightning ``devices`` value asks for: 2, "2", [0, 1] or "0,1"."""
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, str) and "," in devices:
        return len([device for device in devices.split(",") if device.strip()])
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    if isinstance(devices, list | tuple | ListConfig) and devices:
        return len(devices)
    raise ValueError(
        f"trainer.devices={devices!r}: the effective batch size needs a known number of devices; "
        "pass trainer.devices=<number> (or a list of device indices)"
    )


def accumulation(effective_batch_size: int | None, batch_size: int, devices, num_nodes: int = 1) -> int:
    """Gradient-accumulation steps that turn per-device batches into the effective batch size.

    Every device of every node takes ``batch_size`` samples per step: with 2 devices the accumulation is halved.
    Without an effective batch size (None) there is no accumulation: the step takes what the devices take.
    """
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise ValueError(f"trainer.num_nodes={num_nodes!r} must be an integer >= 1: pass trainer.num_nodes=<nodes>")
    processes = device_count(devices) * num_nodes
    if effective_batch_size is None:
        return 1
    per_step = batch_size * processes
    if effective_batch_size % per_step:
        raise ValueError(
            f"training.effective_batch_size={effective_batch_size} is not a multiple of "
            f"batch_size={batch_size} x {processes} device(s) (trainer.devices x trainer.num_nodes): "
            "change batch_size or training.effective_batch_size, or trainer.devices"
        )
    return effective_batch_size // per_step


def channel_count() -> int:
    """How many channels a state has: counted from their one list, `data.CHANNELS`."""
    return len(CHANNELS)


def add(*terms: int) -> int:
    return sum(terms)


def mul(*factors: int) -> int:
    return math.prod(factors)


RESOLVERS = {
    "band_limit": band_limit,
    "add": add,
    "channel_count": channel_count,
    "mul": mul,
    "output_dir": output_dir,
    "safe_dirname": safe_dirname,
    "prepend_underscore": prepend_underscore,
    "abspath": abspath,
    "repo_root": repo_root,
    "on_debug": on_debug,
    "sweep_name": sweep_name,
    "isdist": isdist,
    "accumulation": accumulation,
    "on_resume": on_resume,
    "on_rank_zero": on_rank_zero,
    "rank_prefix": rank_prefix,
    "log_file_mode": log_file_mode,
}

for _name, _resolver in RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _resolver, replace=True)
