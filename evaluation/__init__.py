"""Evaluation of trained operators: figures (`evaluation.plots`) and sweep comparisons (`evaluation.report`).

Nothing is imported here so that loading the Hydra callback in `evaluation.report` stays cheap.
"""
