"""The Lightning module that trains any neural operator as a one-hour time stepper."""

from collections.abc import Callable, Sequence

import torch
from lightning.pytorch import LightningModule
from torch import nn

from models.metrics import area_weights, relative_l2, squared_l2_loss

CHANNELS = ("geopotential", "vorticity", "divergence")


class NeuralOperatorModule(LightningModule):
    """Learns state(t) -> state(t + 1 h) in normalised units.

    Batches are trajectories of shape (batch, steps, 3, nlat, nlon). Training
    rolls the model out over ``steps - 1`` hours from the first state and
    averages the area-weighted squared L2 error over those steps.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None,
        nlat: int,
        nlon: int,
        grid: str = "equiangular",
        residual: bool = True,
        channels: Sequence[str] = CHANNELS,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.residual = residual
        self.channels = list(channels)
        self.register_buffer("weights", area_weights(nlat, nlon, grid), persistent=False)
        # Normalisation of the data the model was trained on, kept in the checkpoint.
        self.register_buffer("mean", torch.zeros(len(channels), 1, 1))
        self.register_buffer("std", torch.ones(len(channels), 1, 1))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and datamodule.mean is not None:
            self.mean.copy_(datamodule.mean)
            self.std.copy_(datamodule.std)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """One hour ahead: (batch, 3, nlat, nlon) -> (batch, 3, nlat, nlon)."""
        update = self.net(state)
        return state + update if self.residual else update

    def rollout(self, state: torch.Tensor, steps: int) -> torch.Tensor:
        """Autoregressive prediction, shape (batch, steps, 3, nlat, nlon)."""
        predictions = []
        for _ in range(steps):
            state = self(state)
            predictions.append(state)
        return torch.stack(predictions, dim=1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        predictions = self.rollout(batch[:, 0], batch.shape[1] - 1)
        loss = squared_l2_loss(predictions, batch[:, 1:], self.weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        state, target = batch[:, 0], batch[:, 1]
        prediction = self(state)
        size = len(batch)
        self.log("val/loss", squared_l2_loss(prediction, target, self.weights), prog_bar=True, batch_size=size)
        model_error = relative_l2(prediction, target, self.weights).mean(dim=0)
        persistence_error = relative_l2(state, target, self.weights).mean(dim=0)
        for index, channel in enumerate(self.channels):
            self.log(f"val/rel_l2/{channel}", model_error[index], batch_size=size)
            self.log(f"val/rel_l2_persistence/{channel}", persistence_error[index], batch_size=size)
        self.log("val/rel_l2", model_error.mean(), prog_bar=True, batch_size=size)
        self.log("val/rel_l2_persistence", persistence_error.mean(), batch_size=size)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # neuraloperator adds its constructor arguments (functions, classes) to the state
        # dict; dropping them keeps checkpoints loadable with torch.load(weights_only=True).
        checkpoint["state_dict"].pop("_metadata", None)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
