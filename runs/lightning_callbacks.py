"""Lightning callbacks: a run survives being killed, stops when its numbers blow up, and tells train.log how it goes."""

import datetime
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from runs.folder import LAST_CHECKPOINT

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or weights); the checkpoints hold the last finite state."""


class StopOnNonFinite(Callback):
    """Stops training at the first non-finite loss, or non-finite weights after an optimizer step.

    It runs before the checkpoint callbacks of the same batch (Lightning calls those last), so no checkpoint
    ever holds the broken weights: ckpt/last.ckpt stays the last good state.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_finite = torch.isfinite(loss).all() if loss is not None else torch.tensor(True, device=pl_module.device)
        # The largest weight magnitude is inf or NaN exactly when a weight is: one fused reduction over all weights
        # and, with the loss, one host-device synchronisation per step.
        largest_weight = torch.nn.utils.get_total_norm(pl_module.parameters(), norm_type=math.inf)
        if bool(loss_finite & torch.isfinite(largest_weight)):
            return
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step} (batch {batch_idx} of the epoch)"
        if not loss_finite:
            raise NonFiniteLossError(f"Training stopped: non-finite loss ({loss.item()}) at {where}")
        raise NonFiniteLossError(f"Training stopped: non-finite weights after the optimizer step at {where}")


class LastCheckpoint(Checkpoint):
    """Writes ckpt/last.ckpt every ``every_n_train_steps`` optimizer steps within an epoch and at every epoch end.

    Lightning's ModelCheckpoint with a monitor writes last.ckpt only at epochs that improve the monitored value,
    so a run whose last epochs do not improve would resume from an older state. Skipping the step checkpoint on an
    epoch's last batch leaves out a state Lightning resumes wrongly (it counts that epoch done, without its
    validation). A `Checkpoint`, so Lightning calls it after the other callbacks (`StopOnNonFinite` first) and, in
    the order of the list, after the best-model checkpoint: last.ckpt holds that one's latest state.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        self.path = Path(dirpath) / LAST_CHECKPOINT.name
        self.every_n_train_steps = every_n_train_steps
        self._saved_at_step: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._saved_at_step = trainer.global_step  # the state training starts from: step 0, or a resumed checkpoint

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._saved_at_step == trainer.global_step:
            # Lightning logs a batch's metrics after its checkpoint: flushed now, metrics.csv holds every row
            # logged before the checkpoint (a resume keeps those, and logs the later steps again).
            for logger in trainer.loggers:
                logger.save()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, every = trainer.global_step, self.every_n_train_steps
        # Once per step: with gradient accumulation, at the batch of the optimizer step (no gradients pending).
        new_step = step != self._saved_at_step
        if every > 0 and step % every == 0 and new_step and batch_idx + 1 < trainer.num_training_batches:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        """Written next to last.ckpt, then renamed over it: a kill while writing leaves the previous one whole."""
        if trainer.fast_dev_run:
            return
        partial = self.path.with_suffix(".ckpt.partial")
        trainer.save_checkpoint(partial, weights_only=False)
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        for logger in trainer.loggers:
            logger.save()
        self._saved_at_step = trainer.global_step


class RNGState(Callback):
    """Saves the global torch RNG state in each checkpoint and restores it on resume (Lightning does neither).

    Random layers (dropout...) then draw the same numbers after a resume as in an uninterrupted run.
    """

    def state_dict(self) -> dict[str, Any]:
        state = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class EpochLog(Callback):
    """One line per epoch through Python logging (Hydra writes it to train.log), from rank 0 only:

    ``epoch 3/10: train loss 0.0123, val rollout rel L2 0.0456 (persistence 0.987), 12.3 s, 0:01:26 left``

    The validation error is the model's relative L2 over the validation rollout (mean over its leads and the
    channels; what picks the best checkpoint) against persistence's on the same trajectories: a model above
    persistence has learnt nothing useful yet. The time left is the mean epoch time of this process's epochs
    times the epochs still to run (a resumed run counts only the epochs it trained itself).
    """

    def __init__(self) -> None:
        self._epoch_started = 0.0
        self._epoch_times: list[float] = []
        self._validated_epoch: int | None = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning calls this after the epoch's validation, with both epochs' metrics in callback_metrics.
        self._epoch_times.append(time.perf_counter() - self._epoch_started)
        if trainer.is_global_zero:
            log.info(epoch_line(trainer, self._epoch_times, self._validated_epoch == trainer.current_epoch))


def epoch_line(trainer: Trainer, epoch_times: list[float], validated: bool) -> str:
    """The line of the epoch that just ended: its losses, its time, and the time still to go."""
    metrics = trainer.callback_metrics
    epoch = trainer.current_epoch + 1
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    parts = [f"epoch {epoch}/{max_epochs or '?'}: train loss {_value(metrics, 'train/loss_epoch')}"]
    if validated:
        parts.append(
            f"val rollout rel L2 {_value(metrics, 'val/rollout_rel_l2')} "
            f"(persistence {_value(metrics, 'val/rollout_rel_l2_persistence')})"
        )
    else:
        parts.append("no validation this epoch")
    parts.append(f"{epoch_times[-1]:.1f} s")
    if max_epochs is not None:
        left = sum(epoch_times) / len(epoch_times) * max(0, max_epochs - epoch)
        parts.append(f"{datetime.timedelta(seconds=round(left))} left")
    return ", ".join(parts)


def _value(metrics: dict, key: str) -> str:
    return f"{float(metrics[key]):.4g}" if key in metrics else "n/a"
