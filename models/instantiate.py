"""Objects from plain ``_target_`` dicts, as Hydra's ``instantiate`` builds them, without Hydra.

A checkpoint keeps the network, optimizer and scheduler as these dicts (plain containers load with
``torch.load(weights_only=True)``), so the module rebuilds them itself and a checkpoint needs nothing else to load.
Supported keys: ``_target_`` (a dotted import path), ``_args_`` (positional arguments) and ``_partial_`` (a
`functools.partial` instead of a call, for factories such as the optimizer). Nested ``_target_`` dicts, also in
lists, are built first and passed in built, as Hydra's recursive instantiation does.
"""

import functools
import importlib
from collections.abc import Callable
from typing import Any

SPECIAL_KEYS = {"_target_", "_args_", "_partial_"}


def instantiate(config: Any) -> Any:
    """``config`` with every ``_target_`` dict in it replaced by the object it describes."""
    if isinstance(config, list | tuple):
        return [instantiate(item) for item in config]
    if not isinstance(config, dict):
        return config
    if "_target_" not in config:
        return {key: instantiate(value) for key, value in config.items()}
    unknown = sorted(key for key in config if key.startswith("_") and key.endswith("_") and key not in SPECIAL_KEYS)
    if unknown:
        raise ValueError(f"{config['_target_']}: {unknown} not supported here; use only {sorted(SPECIAL_KEYS)}")
    target = locate(config["_target_"])
    args = instantiate(list(config.get("_args_", [])))
    kwargs = {key: instantiate(value) for key, value in config.items() if key not in SPECIAL_KEYS}
    if config.get("_partial_", False):
        return functools.partial(target, *args, **kwargs)
    return target(*args, **kwargs)


def locate(path: str) -> Callable[..., Any]:
    """The object at a dotted path: the longest importable module prefix, then attributes (``a.b.Class.method``)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Only a missing prefix means "try a shorter one": a module that exists but fails to import is an error.
            if error.name is None or not (module_name + ".").startswith(error.name + "."):
                raise
            continue
        try:
            for attribute in parts[split:]:
                found = getattr(found, attribute)
        except AttributeError as error:
            raise ImportError(f"_target_ {path!r}: {module_name} has no {'.'.join(parts[split:])!r}") from error
        return found
    raise ImportError(f"_target_ {path!r}: no module {parts[0]!r} can be imported")
