"""The Lightning module that trains any neural operator as a one-hour time stepper."""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from models.instantiate import instantiate
from models.latitude import LatitudeInput
from models.metrics import (
    angular_power_spectrum,
    area_mean,
    area_weights,
    mean_and_standard_error,
    relative_l2,
    spectrum_transform,
    squared_l2_loss,
)
from models.precision import spectral_in_float32


def roll_out(step: Callable[[torch.Tensor], torch.Tensor], state: torch.Tensor, steps: int) -> torch.Tensor:
    """Autoregressive prediction of a one-hour stepper (the model or a baseline): (batch, steps, 3, nlat, nlon)."""
    predictions = []
    for _ in range(steps):
        state = step(state)
        predictions.append(state)
    return torch.stack(predictions, dim=1)


class NeuralOperatorModule(LightningModule):
    """Learns state(t) -> state(t + 1 h) in normalised units.

    Batches are trajectories of shape (batch, steps, 3, nlat, nlon). Training
    rolls the model out over ``rollout_steps`` hours from the first state (one
    hour before epoch ``rollout_start_epoch``) and averages the area-weighted
    squared L2 error over those steps: training on its own rollouts keeps a
    model stable over many steps. Validation rolls it out over
    ``val_rollout_steps`` hours, as the test does over ``test_rollout_steps``:
    ``val/rollout_rel_l2`` is the mean relative L2 over those leads, the channels
    and the validation trajectories; ``val/loss`` and ``val/rel_l2`` are one-step.

    ``net``, ``optimizer`` and ``scheduler`` are plain ``_target_`` dicts (see
    `models.instantiate`; the optimizer and scheduler with ``_partial_: true``),
    saved with every other argument in the checkpoint's hyperparameters: a
    checkpoint rebuilds its module with ``load_from_checkpoint(path)`` alone.
    ``channels`` names the state's channels, in order; their count sizes the
    normalisation.
    """

    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        nlat: int,
        nlon: int,
        channels: Sequence[str],
        grid: str = "equiangular",
        residual: bool = True,
        rollout_steps: int = 1,
        rollout_start_epoch: int = 0,
        test_rollout_steps: int = 20,
        val_rollout_steps: int = 1,
        example_leads: Sequence[int] = (1, 5, 10, 20),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Every network sees sin(latitude) (models/latitude.py). trainer.precision=bf16-mixed: the spectral transforms
        # stay in float32, also in a model loaded for inference.
        self.net = spectral_in_float32(LatitudeInput(instantiate(net), nlat, grid))
        self.optimizer_factory = instantiate(optimizer)
        self.scheduler_factory = instantiate(scheduler)
        self.residual = residual
        self.channels = list(channels)
        self.rollout_steps = rollout_steps
        self.rollout_start_epoch = rollout_start_epoch
        self.test_rollout_steps = test_rollout_steps
        self.val_rollout_steps = val_rollout_steps
        self.example_leads = list(example_leads)
        self.test_results: dict = {}
        # The epoch's mean training loss, over all ranks. Its sums are in the state dict: a run resumed within an
        # epoch logs the same mean as one left alone (Lightning does not checkpoint its own running means).
        self.epoch_loss = MeanMetric()
        self.epoch_loss.persistent(True)
        # The validation rollout's means over trajectories, exact over DDP ranks (their sums and counts are synced):
        # the whole rollout's, persistence's, and the model's at each map lead the rollout reaches.
        self.val_leads = [lead for lead in example_leads if lead <= val_rollout_steps]
        rollout_means = ["rollout_rel_l2", "rollout_rel_l2_persistence"]
        rollout_means += [f"rollout_rel_l2/{lead}h" for lead in self.val_leads]
        self.val_rollout = nn.ModuleDict({name: MeanMetric() for name in rollout_means})
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
        return roll_out(self, state, steps)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        steps = self.rollout_steps if self.current_epoch >= self.rollout_start_epoch else 1
        predictions = self.rollout(batch[:, 0], steps)
        loss = squared_l2_loss(predictions, batch[:, 1 : steps + 1], self.weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        # The epoch's mean too, so that a run shorter than log_every_n_steps has a loss curve (see __init__). A
        # checkpoint written at an epoch's end holds that epoch's sums: the next epoch starts from zero.
        if batch_idx == 0:
            self.epoch_loss.reset()
        self.epoch_loss.update(loss.detach(), weight=len(batch))
        self.log("train/loss_epoch", self.epoch_loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        batch = batch[:, : self.val_rollout_steps + 1]
        state, targets = batch[:, 0], batch[:, 1:]
        predictions = self.rollout(state, targets.shape[1])
        self._log_rollout_errors(state, predictions, targets)
        # One-step values at epoch level, averaged over every rank of a multi-process run (synced at the epoch's end).
        prediction, target = predictions[:, 0], targets[:, 0]
        size = len(batch)
        self.log(
            "val/loss",
            squared_l2_loss(prediction, target, self.weights),
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        model_error = relative_l2(prediction, target, self.weights).mean(dim=0)
        persistence_error = relative_l2(state, target, self.weights).mean(dim=0)
        for index, channel in enumerate(self.channels):
            self.log(f"val/rel_l2/{channel}", model_error[index], batch_size=size, sync_dist=True)
            self.log(f"val/rel_l2_persistence/{channel}", persistence_error[index], batch_size=size, sync_dist=True)
        self.log("val/rel_l2", model_error.mean(), prog_bar=True, batch_size=size, sync_dist=True)
        self.log("val/rel_l2_persistence", persistence_error.mean(), batch_size=size, sync_dist=True)

    def _log_rollout_errors(self, state: torch.Tensor, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Each validation trajectory's relative L2, mean over channels, into the epoch's rollout means."""
        errors = relative_l2(predictions, targets, self.weights).mean(dim=-1)  # (batch, leads)
        persistence = relative_l2(state[:, None], targets, self.weights).mean(dim=(1, 2))
        per_trajectory = {"rollout_rel_l2": errors.mean(dim=1), "rollout_rel_l2_persistence": persistence}
        per_trajectory.update({f"rollout_rel_l2/{lead}h": errors[:, lead - 1] for lead in self.val_leads})
        for name, values in per_trajectory.items():
            mean = self.val_rollout[name]
            mean.update(values)
            self.log(f"val/{name}", mean, prog_bar=name == "rollout_rel_l2", on_step=False, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        # The data module's baselines (one-hour steppers on normalised states); a loader without a data module is
        # compared with persistence only. Held in a plain dict: they never enter this module's checkpoints.
        datamodule = getattr(self.trainer, "datamodule", None)
        baselines = getattr(datamodule, "baselines", None) or {"persistence": nn.Identity()}
        self._test: dict = {
            "forecasters": {"model": self, **{name: stepper.to(self.device) for name, stepper in baselines.items()}},
            "sht": spectrum_transform(self.hparams.nlat, self.hparams.nlon, self.hparams.grid).to(self.device),
            "sums": {},
            "example": None,
        }

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """Roll the model and every baseline out from the same initial states; accumulate, per lead time and
        channel, sums of each trajectory's error and of its square (for standard errors over trajectories) and
        the power spectra of the model's prediction and the truth at the map leads."""
        batch = batch[:, : self.test_rollout_steps + 1]
        state, targets = batch[:, 0], batch[:, 1:]  # (B, 3, H, W), (B, steps, 3, H, W)
        physical_targets = self.to_physical(targets)
        sums = {"count": torch.tensor(float(len(batch)), dtype=torch.float64, device=batch.device)}
        model_forecast = self.rollout(state, targets.shape[1])
        for name, forecaster in self._test["forecasters"].items():
            forecast = model_forecast if forecaster is self else roll_out(forecaster, state, targets.shape[1])
            errors = relative_l2(forecast, targets, self.weights)  # (B, steps, 3)
            # The channel mean per trajectory: its spread, not the channels' own, gives the mean's standard error.
            errors = torch.cat([errors, errors.mean(dim=-1, keepdim=True)], dim=-1).double()
            sums[f"rel_l2/{name}"] = errors.sum(dim=0)  # (steps, 3 + 1)
            sums[f"rel_l2_squared/{name}"] = (errors**2).sum(dim=0)
            squared = (self.to_physical(forecast) - physical_targets) ** 2
            sums[f"mse/{name}"] = area_mean(squared, self.weights).double().sum(dim=0)  # (steps, 3)
        leads = [lead - 1 for lead in self._map_leads(targets.shape[1])]
        for kind, fields in (("target", targets), ("prediction", model_forecast)):
            spectra = angular_power_spectrum(fields[:, leads], self._test["sht"])  # (B, leads, 3, degrees)
            sums[f"spectrum/{kind}"] = spectra.double().sum(dim=0)
        for key, value in sums.items():
            self._test["sums"][key] = self._test["sums"].get(key, 0) + value
        if self._test["example"] is None:  # the whole rollout of one trajectory, for the maps and the animation
            self._test["example"] = (physical_targets[0].cpu(), self.to_physical(model_forecast[0]).cpu())

    def on_test_epoch_end(self) -> None:
        """Per-lead means and standard errors over all test trajectories (all ranks), kept in ``test_results``:
        rel_l2 and rel_l2_se (steps, channels + 1; the last column is the channel mean), rmse (steps, channels),
        per forecast ("model", then the baselines); the power spectra at the map leads; one example rollout."""
        sums = {key: self.trainer.strategy.reduce(value, reduce_op="sum") for key, value in self._test["sums"].items()}
        count = sums.pop("count")
        results = {"num_trajectories": int(count), "rel_l2": {}, "rel_l2_se": {}, "rmse": {}}
        for name in self._test["forecasters"]:
            mean, standard_error = mean_and_standard_error(
                sums[f"rel_l2/{name}"], sums[f"rel_l2_squared/{name}"], count
            )
            results["rel_l2"][name], results["rel_l2_se"][name] = mean.cpu(), standard_error.cpu()
            results["rmse"][name] = (sums[f"mse/{name}"] / count).sqrt().cpu()
        steps = len(results["rel_l2"]["model"])
        leads = self._map_leads(steps)
        results["power_spectrum"] = {"lead_hours": leads}
        for kind in ("target", "prediction"):
            results["power_spectrum"][kind] = (sums[f"spectrum/{kind}"] / count).cpu()  # (leads, 3, degrees)
        targets, predictions = self._test["example"]
        results["example"] = {"lead_hours": leads, "target": targets, "prediction": predictions}
        self.test_results = results
        self._test = {}
        for lead in leads:
            for name, errors in results["rel_l2"].items():
                key = "test/rel_l2" if name == "model" else f"test/rel_l2_{name}"
                self.log(f"{key}/{lead}h", errors[lead - 1, -1].float(), rank_zero_only=True)
            self.log(
                f"test/rel_l2_se/{lead}h", results["rel_l2_se"]["model"][lead - 1, -1].float(), rank_zero_only=True
            )

    def _map_leads(self, steps: int) -> list[int]:
        """The map leads (hours) that the test rollout reaches."""
        return [lead for lead in self.example_leads if lead <= steps]

    def to_physical(self, states: torch.Tensor) -> torch.Tensor:
        return states * self.std + self.mean

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
