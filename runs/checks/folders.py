"""The folders a run writes into (outputs, data cache) must be creatable and writable."""

import os
import re
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Keys that point to folders this run writes into.
FOLDER_KEYS = ("log_dir", "data.data_root")


def check_folders(cfg: DictConfig) -> Iterator[str]:
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
