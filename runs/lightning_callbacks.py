"""Lightning callbacks that make a run survive being killed and stop it when its numbers blow up."""

import math
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint


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
        self.path = Path(dirpath) / "last.ckpt"
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
