from data.generate import CHANNELS, DataSpec, ensure_cached

__all__ = ["CHANNELS", "DataSpec", "ShallowWaterDataModule", "ensure_cached"]


def __getattr__(name: str) -> type:
    # Importing Lightning takes seconds: a process that only generates data (a DDP rank waiting on the
    # lock, a generation script) never needs it.
    if name == "ShallowWaterDataModule":
        from data.datamodule import ShallowWaterDataModule

        return ShallowWaterDataModule
    raise AttributeError(f"module 'data' has no attribute {name!r}")
