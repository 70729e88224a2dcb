"""train.log's line per epoch, and the training loss per epoch beside the one per step."""

import csv
import itertools
import logging
import math
import re
from types import SimpleNamespace

import pytest
from lightning.pytorch import Callback

from runs.lightning_callbacks import EpochLog, epoch_line
from tests.conftest import fit_tiny_module

CONV = {"_target_": "torch.nn.Conv2d", "in_channels": 4, "out_channels": 3, "kernel_size": 1}
LINE = re.compile(
    r"epoch (\d+)/2: train loss (\S+), val rollout rel L2 (\S+) \(persistence (\S+)\), (\d+\.\d) s, "
    r"(\d+:\d\d:\d\d) left"
)


class StepLosses(Callback):
    """Each training step's loss, by epoch."""

    def __init__(self) -> None:
        self.losses: dict[int, list[float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.setdefault(trainer.current_epoch, []).append(float(outputs["loss"]))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Two epochs of three steps, with the epoch log recorded as Hydra would write it to train.log.

    The callback's clock moves 30 s at each reading (an epoch's start and end): each epoch lasts 30 s.
    """
    records, step_losses = [], StepLosses()
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("runs.lightning_callbacks")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    clock = SimpleNamespace(perf_counter=itertools.count(step=30.0).__next__)
    try:
        tmp_path = tmp_path_factory.mktemp("fit")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("runs.lightning_callbacks.time", clock)
            fit_tiny_module(CONV, tmp_path, [EpochLog(), step_losses], max_epochs=2, log_every_n_steps=1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return [record.getMessage() for record in records], metrics_rows(tmp_path), step_losses.losses


def metrics_rows(folder) -> list[dict]:
    with open(folder / "metrics.csv") as file:
        return list(csv.DictReader(file))


def epoch_values(rows: list[dict], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row.get(key)]


def test_one_line_per_epoch_with_losses_time_and_time_left(fitted):
    lines, rows, _ = fitted
    matches = [LINE.fullmatch(line) for line in lines]
    assert len(lines) == 2 and all(matches), lines
    assert [int(match[1]) for match in matches] == [1, 2]
    for column, group in (("train/loss_epoch", 2), ("val/rollout_rel_l2", 3), ("val/rollout_rel_l2_persistence", 4)):
        logged = epoch_values(rows, column)
        assert [float(match[group]) for match in matches] == pytest.approx(logged, rel=1e-3), column
    assert float(matches[0][4]) == pytest.approx(math.sqrt(2), rel=0.1), "independent random states: about sqrt 2"
    assert [match[5] for match in matches] == ["30.0", "30.0"]
    assert [match[6] for match in matches] == ["0:00:30", "0:00:00"], "the mean epoch time, times the epochs left"


def test_training_loss_is_logged_per_epoch_as_well_as_per_step(fitted):
    _, rows, losses = fitted
    assert epoch_values(rows, "train/loss") == pytest.approx(losses[0] + losses[1], rel=1e-6)
    means = [sum(epoch) / len(epoch) for epoch in (losses[0], losses[1])]
    assert epoch_values(rows, "train/loss_epoch") == pytest.approx(means, rel=1e-6), "the mean of the epoch's steps"


def test_a_run_resumed_from_an_epoch_end_checkpoint_logs_the_next_epochs_loss_alone(tmp_path):
    """An epoch-end checkpoint holds that epoch's loss sums; the next epoch's mean must not include them."""
    _, first = fit_tiny_module(CONV, tmp_path / "first", max_epochs=1)
    step_losses = StepLosses()
    checkpoint = first.checkpoint_callback.best_model_path
    fit_tiny_module(CONV, tmp_path / "resumed", [step_losses], checkpoint, max_epochs=2)
    (losses,) = step_losses.losses.values()
    mean = sum(losses) / len(losses)
    assert epoch_values(metrics_rows(tmp_path / "resumed"), "train/loss_epoch") == pytest.approx([mean], rel=1e-6)


def test_an_epoch_without_validation_or_epoch_limit_says_so():
    trainer = SimpleNamespace(callback_metrics={"train/loss_epoch": 0.5}, current_epoch=4, max_epochs=-1)
    line = epoch_line(trainer, [12.0, 14.04], validated=False)
    assert line == "epoch 5/?: train loss 0.5, no validation this epoch, 14.0 s"
