"""Lightning callbacks that draw while training and write the run's report after its test stage."""

import logging
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from runs.folder import PLOTS_DIR, started_with

log = logging.getLogger(__name__)


def log_images(trainer: Trainer, images: dict[str, Path]) -> None:
    """Send pictures to every W&B logger of the run (none in debug runs): PNGs as images, GIFs (the rollout
    animation) as videos, which W&B plays."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            for key, path in images.items():
                log = logger.log_video if Path(path).suffix == ".gif" else logger.log_image
                log(key, [str(path)], step=trainer.global_step)


class ValidationMaps(Callback):
    """Maps of one fixed validation sample one hour ahead, every ``every_n_epochs`` epochs (none with ``plots``
    False: eval.plots).

    Saved under ``<run>/plots/validation/`` and logged to W&B, so a run can be
    judged by eye while it trains.
    """

    def __init__(self, run_dir: str, every_n_epochs: int = 5, plots: bool = True) -> None:
        self.directory = Path(run_dir) / PLOTS_DIR / "validation"
        self.every_n_epochs = every_n_epochs
        self.plots = plots

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        last_epoch = epoch + 1 == trainer.max_epochs
        if not self.plots or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if epoch % self.every_n_epochs and not last_epoch:
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


def run_meta(run_dir: Path, pl_module: LightningModule, data: object) -> dict:
    """What a run's test_metrics.json says about the run: model choice, data grid, size and launch overrides."""
    from runs.build import count_parameters

    launch = started_with(run_dir)
    return {
        "model": launch.runtime.choices.model,
        "data": f"{data.spec.nlat}x{data.spec.nlon}",
        "parameters": count_parameters(pl_module.net),
        "overrides": list(launch.overrides.task),
    }


class RunReport(Callback):
    """After the test stage, on rank 0: test_metrics.json and plots/ in the run folder
    (`evaluation.run_report.write_run_report`), and the plots on W&B; with ``plots`` False (eval.plots) the test
    files only.

    The training time in the report is this process's: the time `fit` took, without start-up and test.
    """

    def __init__(self, run_dir: str, plots: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.plots = plots
        self.train_time_s: float | None = None
        self._fit_started = 0.0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_started = time.perf_counter()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_time_s = round(time.perf_counter() - self._fit_started, 1)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from evaluation.run_report import write_run_report

        meta = run_meta(self.run_dir, pl_module, trainer.datamodule) | {"train_time_s": self.train_time_s}
        plots = write_run_report(pl_module.test_results, pl_module.channels, meta, self.run_dir, self.plots)
        log_images(trainer, {f"test/{name}": path for name, path in plots.items()})
        log.info("test metrics%s written to %s", " and plots" if plots else "", self.run_dir)
