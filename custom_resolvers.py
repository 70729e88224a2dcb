"""OmegaConf resolvers used by the configs in ``config/``.

Importing this module registers them; importing it again (tests, multiruns)
is harmless because each registration replaces the previous one.
"""

import os

from omegaconf import OmegaConf

DEBUG_DIR = "debug"


def output_dir(scheme: str, debug: bool) -> str:
    """The run's folder below ``log_dir``: the dated scheme, or the one debug folder."""
    if not isinstance(debug, bool):
        raise ValueError(f"debug must be True or False, got {debug!r}: pass debug=True or debug=False")
    return DEBUG_DIR if debug else scheme


def prepend_underscore(text: str) -> str:
    """'' stays ''; anything else gets a leading '_' (no trailing '_' when there are no overrides)."""
    return f"_{text}" if text else ""


def abspath(path: str) -> str:
    return os.path.abspath(path)


def mkdirs(path: str) -> str:
    """Create ``path`` when the config value is first read, and return it."""
    os.makedirs(path, exist_ok=True)
    return path


def isdist(devices) -> bool:
    """Whether a Lightning ``devices`` value means more than one process."""
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    if isinstance(devices, str):
        return devices == "-1" or (devices.isdigit() and int(devices) > 1) or "," in devices.strip(",")
    return len(devices) > 1


def accumulation(effective_batch_size: int, batch_size: int, devices: int) -> int:
    """Gradient-accumulation steps that turn per-device batches into the effective batch size."""
    per_step = batch_size * devices
    if effective_batch_size % per_step:
        raise ValueError(
            f"training.effective_batch_size={effective_batch_size} is not a multiple of "
            f"batch_size={batch_size} x {devices} device(s): change batch_size or training.effective_batch_size"
        )
    return effective_batch_size // per_step


RESOLVERS = {
    "output_dir": output_dir,
    "prepend_underscore": prepend_underscore,
    "abspath": abspath,
    "mkdirs": mkdirs,
    "isdist": isdist,
    "accumulation": accumulation,
}

for _name, _resolver in RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _resolver, replace=True)
