"""The Lightning module (module.py), the error measures and metric registry (metrics.py) and what the networks need
around them."""

import importlib

# The name of the trained network's forecast in test results (test_metrics.json, test_errors.npz); the other
# forecasts are the data module's baselines. Here, not in module.py, so that reading results costs no torch import.
MODEL = "model"
# The name of the solver's own trajectory beside the forecasts in the test's physical diagnostics (test_physics.npz).
TRUTH = "truth"

__all__ = ["MODEL", "TRUTH", "NeuralOperatorModule"]


def __getattr__(name: str) -> object:
    # Imported on first use: Lightning takes seconds, and a sweep report only needs MODEL.
    if name == "NeuralOperatorModule":
        return importlib.import_module("models.module").NeuralOperatorModule
    raise AttributeError(f"module 'models' has no attribute {name!r}")
