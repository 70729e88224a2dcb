"""Lightning callbacks that draw while training."""

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger


def log_images(trainer: Trainer, images: dict[str, Path]) -> None:
    """Send pictures to every W&B logger of the run (none in debug runs): PNGs as images, GIFs (the rollout
    animation) as videos, which W&B plays."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            for key, path in images.items():
                log = logger.log_video if Path(path).suffix == ".gif" else logger.log_image
                log(key, [str(path)], step=trainer.global_step)


class ValidationMaps(Callback):
    """Maps of one fixed validation sample one hour ahead, every ``every_n_epochs`` epochs.

    Saved under ``<run>/plots/validation/`` and logged to W&B, so a run can be
    judged by eye while it trains.
    """

    def __init__(self, run_dir: str, every_n_epochs: int = 5) -> None:
        self.directory = Path(run_dir) / "plots" / "validation"
        self.every_n_epochs = every_n_epochs

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        last_epoch = epoch + 1 == trainer.max_epochs
        if trainer.sanity_checking or not trainer.is_global_zero or (epoch % self.every_n_epochs and not last_epoch):
            return
        from evaluation.plots import plot_maps

        batch = next(iter(trainer.val_dataloaders))[:1].to(pl_module.device)  # (1, steps, 3, nlat, nlon)
        with torch.no_grad():
            prediction = pl_module(batch[:, 0])
        target = pl_module.to_physical(batch[:, 1]).cpu().numpy()
        prediction = pl_module.to_physical(prediction).cpu().numpy()
        path = self.directory / f"epoch{epoch:03d}.png"
        plot_maps(target, prediction, [1], pl_module.channels, path)
        log_images(trainer, {"val/maps": path})
