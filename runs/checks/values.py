"""Each key's type and range: integers with a minimum, positive numbers, switches, fixed choices, and `???`."""

import math
from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

# Smallest allowed value of each integer key; OPTIONAL ones may also be null.
OPTIONAL = ("training.effective_batch_size", "data.max_window_start")
INTEGER_MINIMUMS = {
    "batch_size": 1,
    "training.effective_batch_size": 1,
    "training.max_epochs": 1,
    "data.nlat": 1,
    "data.nlon": 1,
    "data.solver_steps": 1,
    "data.spinup_steps": 0,
    "data.rollout_steps": 1,
    "data.test_rollout_steps": 1,
    "data.val_rollout_steps": 1,
    "data.window_states": 2,  # one input and one target
    "data.max_window_start": 0,
    "data.num_examples": 1,
    "data.windows_per_epoch": 1,
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
SWITCHES = ("training.compile", "data.online", "model.residual", "eval.plots")
# Keys with a fixed set of values.
CHOICES = {"float32_matmul_precision": ("highest", "high", "medium")}


def is_int(value: object) -> bool:
    """An integer, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def missing_keys(node: object, prefix: str = "") -> list[str]:
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
            missing.extend(missing_keys(value, f"{key}."))
    return missing


def check_sizes(cfg: DictConfig) -> Iterator[str]:
    """Counts, sizes and rates that make no sense at zero or below (or at NaN)."""
    for key, minimum in INTEGER_MINIMUMS.items():
        value = OmegaConf.select(cfg, key)
        if (value is not None or key not in OPTIONAL) and (not is_int(value) or value < minimum):
            yield f"{key}={value!r} must be an integer >= {minimum}: pass {key}=<integer >= {minimum}>"
    for key in POSITIVE_NUMBERS:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
            yield f"{key}={value!r} must be a positive number: pass {key}=<number > 0>"
    rollout = OmegaConf.select(cfg, "eval.rollout_steps")
    train_hours = OmegaConf.select(cfg, "data.rollout_steps")
    test_hours = OmegaConf.select(cfg, "data.test_rollout_steps")
    if rollout is not None and is_int(train_hours) and is_int(test_hours):
        hours = max(train_hours, test_hours)  # a longer test split is a file of its own (data/generate.py)
        if not (is_int(rollout) and 1 <= rollout <= hours):
            yield (
                f"eval.rollout_steps={rollout!r} must be an integer from 1 to the test trajectories' {hours} hours "
                f"(the larger of data.rollout_steps={train_hours} and data.test_rollout_steps={test_hours}): lower "
                "eval.rollout_steps or raise data.test_rollout_steps"
            )


def check_switches(cfg: DictConfig) -> Iterator[str]:
    for key in SWITCHES:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, bool):
            yield f"{key}={value!r} must be True or False: pass {key}=True or {key}=False"


def check_choices(cfg: DictConfig) -> Iterator[str]:
    for key, values in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in values:
            yield f"{key}={value!r} must be one of {', '.join(values)}: pass e.g. {key}={values[0]}"
