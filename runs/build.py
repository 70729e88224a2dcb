"""Objects of a run built from its config: shared by train.py and evaluate.py."""

from omegaconf import DictConfig, OmegaConf
from torch import nn

from data import CHANNELS
from models import NeuralOperatorModule
from runs.init_from import load_initial_weights


def build_module(cfg: DictConfig) -> NeuralOperatorModule:
    """The run's module: with the network weights of `init_from` where the config names a run to start from."""
    module = untrained_module(cfg)
    if cfg.get("init_from") and not cfg.resume:  # a resumed run goes on from its own checkpoint
        load_initial_weights(module, cfg.init_from)
    return module


def untrained_module(cfg: DictConfig) -> NeuralOperatorModule:
    """The module, given the resolved configs as plain containers: its checkpoints describe the network themselves."""

    def plain(node: DictConfig | None) -> dict | None:
        return None if node is None else OmegaConf.to_container(node, resolve=True, throw_on_missing=True)

    module = NeuralOperatorModule(
        net=plain(cfg.model.net),
        optimizer=plain(cfg.training.optimizer),
        scheduler=plain(cfg.training.scheduler),
        channels=list(CHANNELS),
        nlat=cfg.data.nlat,
        nlon=cfg.data.nlon,
        grid=cfg.data.grid,
        residual=cfg.model.residual,
        rollout_steps=cfg.training.rollout_steps,
        rollout_start_epoch=cfg.training.rollout_start_epoch,
        test_rollout_steps=cfg.eval.rollout_steps,
        val_rollout_steps=cfg.eval.val_rollout_steps,
        example_leads=list(cfg.eval.map_leads),
    )
    if cfg.training.compile:
        module.net.compile()  # in place, unlike torch.compile(net): checkpoints keep an eager run's parameter names
    return module


def count_parameters(module: nn.Module) -> int:
    """Real-valued parameters: a complex weight counts twice, as it holds two numbers."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())
