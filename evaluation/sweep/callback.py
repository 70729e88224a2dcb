"""The Hydra callback that writes the sweep's report when a multirun ends (config/globals.yaml:
hydra.callbacks.comparison_report)."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ComparisonReport(Callback):
    """Writes the sweep comparison once every job of a multirun has returned."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Imported here: loading the callback at sweep start stays cheap (no numpy, scipy or matplotlib).
        from evaluation.sweep.report import write_comparison

        try:
            markdown_path = write_comparison(str(config.hydra.sweep.dir))
        except Exception:
            # A broken report must not turn a finished sweep into a failed command.
            log.exception("Could not write the sweep comparison")
            return
        log.info("Sweep comparison written to %s", markdown_path)
