"""Objects of a run built from its config: shared by train.py and evaluate.py."""

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from models import NeuralOperatorModule
from models.latitude import LatitudeInput
from runs.precision import spectral_in_float32


def build_module(cfg: DictConfig) -> NeuralOperatorModule:
    net = LatitudeInput(instantiate(cfg.model.net), cfg.data.nlat, cfg.data.grid)
    net = spectral_in_float32(net)  # trainer.precision=bf16-mixed: transforms in float32
    if cfg.training.compile:
        net.compile()  # in place, unlike torch.compile(net): checkpoints keep the parameter names of an eager run
    return NeuralOperatorModule(
        net=net,
        optimizer=instantiate(cfg.training.optimizer),
        scheduler=instantiate(cfg.training.scheduler),
        nlat=cfg.data.nlat,
        nlon=cfg.data.nlon,
        grid=cfg.data.grid,
        residual=cfg.model.residual,
        rollout_steps=cfg.training.rollout_steps,
        rollout_start_epoch=cfg.training.rollout_start_epoch,
        test_rollout_steps=cfg.eval.rollout_steps,
        example_leads=list(cfg.eval.map_leads),
    )


def count_parameters(module: nn.Module) -> int:
    """Real-valued parameters: a complex weight counts twice, as it holds two numbers."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())
