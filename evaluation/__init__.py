"""Evaluation of trained operators: a run's report (`evaluation.run_report`), figures (`evaluation.plots`), the
statistics of every comparison (`evaluation.statistics`) and sweep comparisons (`evaluation.sweep`).

Nothing is imported here so that loading the Hydra callback in `evaluation.sweep.callback` stays cheap.
"""
