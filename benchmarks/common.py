"""What the benchmarks share: a Trainer that only trains and times."""

from lightning.pytorch import Callback, Trainer


def timing_trainer(timer: Callback, **limits) -> Trainer:
    """A CPU Trainer without validation, logging, checkpoints or progress output, so only training is timed."""
    return Trainer(
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        accelerator="cpu",
        **limits,
    )
