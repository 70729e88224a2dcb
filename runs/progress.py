"""Lightning callbacks that tell a person reading train.log how training goes."""

import datetime
import logging
import time

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


class EpochLog(Callback):
    """One line per epoch through Python logging (Hydra writes it to train.log), from rank 0 only:

    ``epoch 3/10: train loss 0.0123, val rel L2 0.0456 (persistence 0.987), 12.3 s, 0:01:26 left``

    The validation error is the model's one-step relative L2 against persistence's (the same samples): a model
    above persistence has learnt nothing useful yet. The time left is the mean epoch time of this process's epochs
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
            f"val rel L2 {_value(metrics, 'val/rel_l2')} (persistence {_value(metrics, 'val/rel_l2_persistence')})"
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
