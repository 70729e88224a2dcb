from data.datamodule import ShallowWaterDataModule
from data.generate import CHANNELS, DataSpec, ensure_cached

__all__ = ["CHANNELS", "DataSpec", "ShallowWaterDataModule", "ensure_cached"]
