"""Batch arithmetic: the split of the effective batch over devices and accumulation, and a full batch per epoch."""

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from custom_resolvers import device_count
from runs.checks.values import is_int


def check_batches(cfg: DictConfig) -> Iterator[str]:
    """The accumulation resolver's batch split, and at least one full training batch per epoch."""
    batch_size, examples = OmegaConf.select(cfg, "batch_size"), OmegaConf.select(cfg, "data.windows_per_epoch")
    effective = OmegaConf.select(cfg, "training.effective_batch_size")
    if not all(is_int(value) and value > 0 for value in (batch_size, examples, effective or 1)):
        return  # reported by check_sizes
    try:
        OmegaConf.select(cfg, "trainer.accumulate_grad_batches")
    except OmegaConfBaseException as error:
        yield str(error.__cause__ or error)  # the resolver's own message names the keys and the fix
    processes = _processes(cfg)
    per_step = batch_size * processes
    if examples < per_step:
        yield (
            f"data.windows_per_epoch={examples} is less than one batch (batch_size={batch_size} on each of "
            f"{processes} device(s)), so no training step would run: "
            "raise data.windows_per_epoch or lower batch_size"
        )
    if processes > 1:  # each process of a multi-device run validates and tests its own share of the examples
        for key in ("data.num_val_examples", "data.num_test_examples"):
            value = OmegaConf.select(cfg, key)
            if is_int(value) and 0 < value < processes:
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
    return devices * (nodes if is_int(nodes) and nodes > 0 else 1)
