"""The Lightning module that trains any neural operator as a one-hour time stepper."""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from models import MODEL, TRUTH
from models.instantiate import instantiate
from models.latitude import LatitudeInput
from models.metrics import METRICS, area_weights, relative_l2, squared_l2_loss
from models.precision import spectral_in_float32
from models.rollout_diagnostics import LeadDiagnostics, Trajectories, example_frame_hours


def interleave_shards(shards: torch.Tensor, total: int) -> torch.Tensor:
    """Round-robin shards back in order: (ranks, forecasts, per rank, ...) -> (forecasts, total, ...), where rank r's
    k-th entry is trajectory k * ranks + r and entries past ``total`` are padding."""
    ranks, forecasts, per_rank = shards.shape[:3]
    ordered = shards.movedim(0, 2).reshape(forecasts, per_rank * ranks, *shards.shape[3:])
    return ordered[:, :total]


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
        # Normalisation of the data the model was trained on, kept in the checkpoint: the units the network works in.
        self.register_buffer("mean", torch.zeros(len(channels), 1, 1))
        self.register_buffer("std", torch.ones(len(channels), 1, 1))
        # Normalisation of the batches it is given, (3, 1, 1) each: its data module's, not saved; None: its own.
        self.register_buffer("data_mean", None, persistent=False)
        self.register_buffer("data_std", None, persistent=False)

    def setup(self, stage: str) -> None:
        """Training takes its normalisation from the data; any other stage keeps the checkpoint's, and converts the
        data module's batches into it (a model tested on other data, e.g. another grid, is not renormalised)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or datamodule.mean is None:
            return
        if stage == "fit":
            self.mean.copy_(datamodule.mean)
            self.std.copy_(datamodule.std)
        mean, std = datamodule.mean.to(self.mean), datamodule.std.to(self.std)
        same = torch.equal(mean, self.mean) and torch.equal(std, self.std)  # no conversion (training, its own data)
        self.data_mean, self.data_std = (None, None) if same else (mean.clone(), std.clone())

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """One hour ahead in the batches' normalisation: (batch, 3, nlat, nlon) -> (batch, 3, nlat, nlon)."""
        if self.data_mean is None:
            return self.step(state)
        # The affine map from the batches' units to the network's: exactly the identity where they are the same.
        scale, shift = self.data_std / self.std, (self.data_mean - self.mean) / self.std
        return (self.step(state * scale + shift) - shift) / scale

    def step(self, state: torch.Tensor) -> torch.Tensor:
        """One hour ahead in the network's own (the checkpoint's) normalisation."""
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
        # The data module's baselines (one-hour steppers on normalised states) and band edge (data.lmax); without a
        # data module, no baselines and the grid's band. Held in a plain dict: they never enter this module's
        # checkpoints.
        datamodule = getattr(self.trainer, "datamodule", None)
        baselines = getattr(datamodule, "baselines", None) or {}
        hparams = self.hparams
        diagnostics = LeadDiagnostics(hparams.nlat, hparams.nlon, hparams.grid, getattr(datamodule, "band_limit", None))
        self._test: dict = {
            "forecasters": {MODEL: self, **{name: stepper.to(self.device) for name, stepper in baselines.items()}},
            "diagnostics": diagnostics.to(self.device),
            "per_trajectory": [],  # per batch: {measure: (source or forecast, batch, ...)}, see test_step
            "spectra": 0,  # summed over trajectories: (source, lead, channel, degree)
            "example": None,
        }

    def test_step(self, batch: Trajectories, batch_idx: int) -> None:
        """Roll the model and every baseline out from the same initial states, lead by lead, and measure each lead
        (`models.rollout_diagnostics.LeadDiagnostics`) per trajectory: every metric of `METRICS`, the latitude bands
        and the authors' metric of each forecast; the invariants, channel moments, power spectra and energy above the
        band edge of each forecast and of the truth. Only those numbers, the states of the current lead and the
        example's frames are kept: memory does not grow with the rollout beyond per-lead numbers.

        ``batch``: (batch, states, 3, nlat, nlon), read one hour at a time (`models.rollout_diagnostics.Trajectories`).
        """
        diagnostics, forecasters = self._test["diagnostics"], self._test["forecasters"]
        steps = self.test_rollout_steps
        truth = batch[:, 0]  # (B, 3, H, W), normalised
        states = dict.fromkeys(forecasters, truth)
        initial = diagnostics.of_states(truth, self.to_physical(truth))["invariants"]  # (B, invariant)
        keep_frames = self._test["example"] is None  # one trajectory's rollout, for the maps and the animation
        frame_hours = example_frame_hours(steps, self.example_leads) if keep_frames else []
        # Each measure's values at every lead, (..., lead), and the frames, in buffers allocated once: small tensors
        # kept lead after lead among each lead's large temporaries fragmented the heap, and memory grew with the
        # rollout (10 MB an hour at 32x64, batch 16).
        measured: dict[str, torch.Tensor] = {}
        frames = {
            kind: truth.new_empty(len(frame_hours), *truth.shape[1:], device="cpu") for kind in ("target", "prediction")
        }
        for lead in range(1, steps + 1):
            truth = batch[:, lead]
            states = {name: forecaster(states[name]) for name, forecaster in forecasters.items()}
            forecasts = torch.stack(list(states.values()))  # (forecast, B, 3, H, W)
            physical_truth, physical_forecasts = self.to_physical(truth), self.to_physical(forecasts)
            values = diagnostics.of_errors(
                forecasts, truth.expand_as(forecasts), physical_forecasts, physical_truth.expand_as(forecasts)
            )
            values |= diagnostics.of_states(  # the sources: the truth, then the forecasts
                torch.cat([truth[None], forecasts]), torch.cat([physical_truth[None], physical_forecasts])
            )
            values["power_spectrum"] = values["power_spectrum"].sum(dim=1)  # over the batch: (source, channel, degree)
            for name, value in values.items():
                if name not in measured:
                    measured[name] = value.new_empty(*value.shape, steps)
                measured[name][..., lead - 1] = value
            if lead in frame_hours:
                frames["target"][frame_hours.index(lead)] = physical_truth[0]
                frames["prediction"][frame_hours.index(lead)] = physical_forecasts[0, 0]
        self._test["spectra"] = self._test["spectra"] + measured.pop("power_spectrum").permute(0, 3, 1, 2)
        measured["moments"] = measured["moments"].movedim(-1, -2)  # (source, B, channel, lead, moment)
        sources = measured["invariants"].shape[0]
        hour_zero = initial.expand(sources, *initial.shape)[..., None]  # every source starts from the truth
        measured["invariants"] = torch.cat([hour_zero, measured["invariants"]], dim=-1)  # (source, B, inv, hour 0..N)
        self._test["per_trajectory"].append(measured)
        if keep_frames:
            self._test["example"] = frames | {"frame_hours": frame_hours}

    def on_test_epoch_end(self) -> None:
        """Every test trajectory's measures (all ranks, in test-split order) kept in ``test_results``: "forecasts"
        ("model", then the baselines), "sources" ("truth", then the forecasts), "lead_hours" (1..N), "errors"
        {metric: (forecast, trajectory, channel, lead)}, "physics" {"invariants": (source, trajectory, invariant,
        hour 0..N), "moments": (source, trajectory, channel, lead, 2), "energy_fraction_above": (source, trajectory,
        channel, lead), "latitude_band_rel_l2": (forecast, trajectory, channel, band, lead),
        "authors_pooled_rel_l2": (forecast, trajectory, lead), "power_spectrum": (source, lead, channel, degree), the
        mean over trajectories}, all float64; "band_limit" and "latitude_bands" (their |latitude| edges in degrees);
        the mean power spectra at the map leads; the example rollout's frames. Logs each metric with a channel mean
        at the map leads."""
        batches = self._test["per_trajectory"]
        measures = {
            name: self._all_trajectories(torch.cat([batch[name] for batch in batches], dim=1)).cpu().numpy()
            for name in batches[0]
        }
        errors = {name: measures.pop(name) for name in METRICS}
        count = next(iter(errors.values())).shape[1]
        steps = next(iter(errors.values())).shape[-1]
        leads = self._map_leads(steps)
        forecasts = list(self._test["forecasters"])
        spectra = (self.trainer.strategy.reduce(self._test["spectra"], reduce_op="sum") / count).cpu().numpy()
        diagnostics = self._test["diagnostics"]
        results = {
            "forecasts": forecasts,
            "sources": [TRUTH, *forecasts],
            "lead_hours": list(range(1, steps + 1)),
            "errors": errors,
            "physics": measures | {"power_spectrum": spectra},
            "band_limit": diagnostics.band_limit,
            "latitude_bands": diagnostics.band_edges,
        }
        # The truth's and the model's mean spectra at the map leads, as (lead, channel, degree).
        lead_index = [lead - 1 for lead in leads]
        results["power_spectrum"] = {
            "lead_hours": leads,
            "target": torch.from_numpy(spectra[0, lead_index]),
            "prediction": torch.from_numpy(spectra[1, lead_index]),
        }
        results["example"] = {"lead_hours": leads, **self._test["example"]}
        self.test_results = results
        self._test = {}
        for name, metric in METRICS.items():
            if not metric.channel_mean:
                continue
            for forecast, values in zip(results["forecasts"], errors[name], strict=True):
                value, standard_error = metric.summary(values)  # (columns, leads); the channel mean last
                key = f"test/{name}" if forecast == MODEL else f"test/{name}_{forecast}"
                for lead in leads:
                    self.log(f"{key}/{lead}h", float(value[-1, lead - 1]), rank_zero_only=True)
                    if forecast == MODEL and standard_error is not None:
                        self.log(f"test/{name}_se/{lead}h", float(standard_error[-1, lead - 1]), rank_zero_only=True)

    def _all_trajectories(self, values: torch.Tensor) -> torch.Tensor:
        """This rank's per-trajectory values (forecast, trajectory, ...) -> every rank's, in test-split order.

        The data module deals test trajectories round-robin (`data.datamodule.EpochSampler`: rank r of W holds
        r, r + W, r + 2W, ...); shares are padded to the largest for all_gather and the padding, which falls after
        the last trajectory, is cut off (`interleave_shards`).
        """
        if self.trainer.world_size == 1:
            return values
        strategy = self.trainer.strategy
        counts = strategy.all_gather(torch.tensor(values.shape[1], device=values.device))  # (W,)
        padded = values.new_zeros(values.shape[0], int(counts.max()), *values.shape[2:])
        padded[:, : values.shape[1]] = values
        return interleave_shards(strategy.all_gather(padded), int(counts.sum()))

    def _map_leads(self, steps: int) -> list[int]:
        """The map leads (hours) that the test rollout reaches."""
        return [lead for lead in self.example_leads if lead <= steps]

    def to_physical(self, states: torch.Tensor) -> torch.Tensor:
        """Batch-normalised states in physical units."""
        if self.data_mean is None:
            return states * self.std + self.mean
        return states * self.data_std + self.data_mean

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
