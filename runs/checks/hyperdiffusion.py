"""The solver's hyperdiffusion and initial band: a reference grid named as the presets are, a band within the data's."""

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from data import HYPERDIFFUSION_RULES, reference_band
from runs.checks.values import is_int


def check_hyperdiffusion(cfg: DictConfig) -> Iterator[str]:
    """data.hyperdiffusion is a rule of `data.HYPERDIFFUSION_RULES`, data.hyperdiffusion_reference names a grid as
    <nlat>x<nlon>, data.initial_lmax is null or a band from 1 to data.lmax. A config saved before these keys existed
    (an old run's, in evaluate.py) means torch-harmonics' rule."""
    rule = OmegaConf.select(cfg, "data.hyperdiffusion", default="grid")
    if rule not in HYPERDIFFUSION_RULES:
        yield (
            f"data.hyperdiffusion={rule!r} must be one of {', '.join(HYPERDIFFUSION_RULES)}: "
            f"pass e.g. data.hyperdiffusion={HYPERDIFFUSION_RULES[0]}"
        )
    reference = OmegaConf.select(cfg, "data.hyperdiffusion_reference", default="32x64")
    try:
        reference_band(reference)
    except ValueError:
        yield (
            f"data.hyperdiffusion_reference={reference!r} must name a grid as <nlat>x<nlon>: "
            "pass e.g. data.hyperdiffusion_reference=32x64"
        )
    initial, lmax = OmegaConf.select(cfg, "data.initial_lmax"), OmegaConf.select(cfg, "data.lmax")
    if initial is not None and is_int(lmax) and not (is_int(initial) and 1 <= initial <= lmax):
        yield (
            f"data.initial_lmax={initial!r} must be null or an integer from 1 to data.lmax={lmax}: "
            "pass data.initial_lmax=null (the damping's band) or a smaller band"
        )
