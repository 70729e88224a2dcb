"""Training windows and the validation rollout against the trajectories they are cut from.

Training trajectories have data.rollout_steps + 1 states (the hours a test rollout visits, eval.rollout_steps by
default); a training sample is a window of data.window_states = training.rollout_steps + 1 of them, starting at
most data.max_window_start hours in.
Validation trajectories have data.val_rollout_steps + 1 states.
"""

from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from runs.checks.values import is_int


def check_windows(cfg: DictConfig) -> Iterator[str]:
    """A window must hold the training rollout and fit in a training trajectory; the validation rollout must fit in
    a validation trajectory."""
    steps, window = OmegaConf.select(cfg, "data.rollout_steps"), OmegaConf.select(cfg, "data.window_states")
    train_rollout = OmegaConf.select(cfg, "training.rollout_steps")
    if is_int(window) and not (is_int(train_rollout) and 1 <= train_rollout < window):
        yield (
            f"training.rollout_steps={train_rollout!r} must be an integer from 1 to data.window_states - 1 = "
            f"{window - 1}: lower training.rollout_steps or drop the data.window_states override"
        )
    latest = OmegaConf.select(cfg, "data.max_window_start")
    if is_int(steps) and is_int(window) and window > steps + 1:
        yield (
            f"training windows of data.window_states={window} states (training.rollout_steps + 1) do not fit in "
            f"the training trajectories of data.rollout_steps + 1 = {steps + 1} states: lower training.rollout_steps "
            f"to at most {steps} or raise data.rollout_steps (eval.rollout_steps by default) to at least {window - 1}"
        )
    elif is_int(steps) and is_int(window) and is_int(latest) and latest > steps + 1 - window:
        yield (
            f"data.max_window_start={latest}: a window of {window} states starting {latest} hours after the "
            f"spin-up runs past the training trajectories' {steps + 1} states: pass data.max_window_start="
            f"<0 to {steps + 1 - window}> or data.max_window_start=null (every start that fits)"
        )
    val_rollout = OmegaConf.select(cfg, "eval.val_rollout_steps")
    val_steps = OmegaConf.select(cfg, "data.val_rollout_steps")
    if is_int(val_steps) and not (is_int(val_rollout) and 1 <= val_rollout <= val_steps):
        yield (
            f"eval.val_rollout_steps={val_rollout!r} must be an integer from 1 to data.val_rollout_steps={val_steps}: "
            "lower eval.val_rollout_steps or raise data.val_rollout_steps"
        )
