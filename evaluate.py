"""Test an existing run again, without training: `python evaluate.py <run folder> [overrides] [--checkpoint last]`.

The run's saved config (.hydra/config.yaml) with Hydra-syntax overrides (`eval.rollout_steps=500 batch_size=64
trainer.devices=2 data=64x128`) gives the data, the rollout and the trainer; the model comes from its checkpoint.
The training data keeps the run's length (its cache file, statistics and baselines): a longer test rollout gets
test trajectories of its own length, generated once into a file beside the cache file and streamed hour by hour.
The model keeps its own normalisation: `data=64x128 data.hyperdiffusion=fixed` tests a 32x64 run on the same
equation sampled twice as finely (docs/evaluation.md).
Each evaluation writes into a folder of its own, <run>/eval/<date>_<time>_<overrides>/ (runs/folder.py):
test_metrics.json, test_errors.npz, plots/, the config and overrides it ran with and evaluate.log, never over the
training's report.
"""

import argparse
import logging
import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

import custom_resolvers
from runs.checks import EVALUATION_CHECKS, check_config
from runs.folder import (
    EVAL_CONFIG,
    EVAL_LOG,
    EVAL_OVERRIDES,
    SAVED_CONFIG,
    DamagedFileError,
    evaluation_folder,
    find_checkpoint,
    saved_config,
    started_with,
)

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "config"
CONFIG_NAME = "neuraloperator"  # train.py's top-level config
# Data keys that follow eval.* keys in the config: an evaluation keeps the run's values, so that a longer rollout
# (eval.rollout_steps=500) does not regenerate the training data under new statistics and baselines.
TRAINED_DATA_KEYS = ("data.rollout_steps", "data.val_rollout_steps")
# Keys that runs saved before they existed get, with what those runs did: the test trajectories' hours followed the
# test rollout, and every report drew its figures. Set before the overrides, which then apply as to any other key.
KEYS_SINCE = {"data.test_rollout_steps": "${eval.rollout_steps}", "eval.plots": True}
# The other ranks of `trainer.devices=2` run this script again: they find rank 0's folder here.
FOLDER_VARIABLE = "EVALUATE_FOLDER"


def evaluation_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The run's saved config with ``overrides``: a key (`batch_size=64`, `+key=value`) is set in it; a group choice
    (`data=64x128`) replaces the group's node by the option as config/ holds it now. `TRAINED_DATA_KEYS` keep the
    run's values unless an override sets them. Raises ValueError naming an override that cannot apply, or a
    `ConfigError` (runs/checks/) for values that cannot work."""
    cfg = saved_config(run_dir)
    for key, value in KEYS_SINCE.items():
        if OmegaConf.select(cfg, key) is None:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    trained = {key: OmegaConf.select(cfg, key) for key in TRAINED_DATA_KEYS}
    built_for = OmegaConf.select(cfg, "model.grid")  # a net built for one grid (model.grid follows the run's data)
    built_for = None if built_for is None else [int(size) for size in built_for]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ValueError(str(error)) from error
    groups = [override for override in parsed if (CONFIG_DIR / override.key_or_group).is_dir()]
    if any(override.key_or_group == "model" for override in groups):
        raise ValueError("model=...: the model of an evaluation is its checkpoint's; pass --checkpoint to choose one")
    if groups:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            fresh = compose(CONFIG_NAME, overrides=[override.input_line for override in groups])
    for override in parsed:
        key = override.key_or_group
        if override in groups:
            if key not in fresh:
                raise ValueError(
                    f"{override.input_line}: this group sets keys across the config; give those keys instead"
                )
            cfg[key] = fresh[key]
        elif override.is_delete():
            raise ValueError(f"{override.input_line}: evaluate.py does not delete keys")
        elif not override.is_add() and OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ValueError(f"{key} is not a key of the run's config: check its spelling, or add it with +{key}=...")
        else:
            OmegaConf.update(cfg, key, override.value(), merge=False, force_add=True)
    overridden = {override.key_or_group for override in parsed}
    for key, value in trained.items():
        if key not in overridden:
            OmegaConf.update(cfg, key, value, merge=False)
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)  # the saved value is a ${hydra:...} interpolation
    check_config(cfg, EVALUATION_CHECKS)
    if built_for is not None and built_for != [cfg.data.nlat, cfg.data.nlon]:
        raise ValueError(
            f"the run's network is built for the {built_for[0]}x{built_for[1]} grid it was trained on (model.grid), "
            f"not {cfg.data.nlat}x{cfg.data.nlon}: drop the data override, or evaluate a model that takes any grid "
            "(model=sfno, model=fno) on it"
        )
    return cfg


def evaluate(run_dir: Path, which: str, cfg: DictConfig, folder: Path) -> dict:
    """Test ``which`` checkpoint of the run in ``run_dir`` as ``cfg`` says; the report goes into ``folder``."""
    import torch
    from hydra.utils import instantiate

    from evaluation.callbacks import log_images, run_meta
    from evaluation.run_report import write_run_report
    from models import NeuralOperatorModule

    torch.set_flush_denormal(True)
    checkpoint = find_checkpoint(run_dir, which)
    if warning := other_equation(saved_config(run_dir).data, cfg.data):
        log.warning(warning)
    datamodule = instantiate(cfg.data)
    # The network as trained; its grid, rollout and map leads as this evaluation asks.
    model = NeuralOperatorModule.load_from_checkpoint(
        checkpoint,
        map_location="cpu",
        nlat=cfg.data.nlat,
        nlon=cfg.data.nlon,
        grid=cfg.data.grid,
        test_rollout_steps=cfg.eval.rollout_steps,
        example_leads=list(cfg.eval.map_leads),
    )
    logger = wandb_logger(cfg, run_dir, folder)
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[], enable_checkpointing=False)
    trainer.test(model, datamodule=datamodule)
    if not trainer.is_global_zero:
        return model.test_results
    meta = run_meta(run_dir, model, datamodule) | {"checkpoint": str(checkpoint)}
    plots = write_run_report(model.test_results, model.channels, meta, folder, cfg.eval.plots)
    log_images(trainer, {f"test/{name}": path for name, path in plots.items()})
    if logger:
        logger.experiment.finish()
    log.info("test metrics%s of %s written to %s", " and plots" if plots else "", checkpoint.name, folder)
    return model.test_results


def other_equation(trained: DictConfig, data: DictConfig) -> str | None:
    """Why ``data`` is another equation than the ``trained`` data's (another damping, data.hyperdiffusion), or None.
    Configs saved before data.hyperdiffusion existed mean torch-harmonics' rule."""
    from data import hyperdiffusion_band

    def band_and_reference(node: DictConfig) -> tuple[int, str]:
        rule = node.get("hyperdiffusion", "grid")
        reference = node.hyperdiffusion_reference if rule == "fixed" else f"{node.nlat}x{node.nlon}"
        return hyperdiffusion_band(rule, reference, node.lmax), reference

    (band, reference), (other, _) = band_and_reference(trained), band_and_reference(data)
    if band == other:
        return None
    return (
        f"the run's data is damped as a {band}-degree band, this evaluation's {data.nlat}x{data.nlon} data as a "
        f"{other}-degree band: another equation; pass data.hyperdiffusion=fixed "
        f"data.hyperdiffusion_reference={reference} to test the run on its own"
    )


def wandb_logger(cfg: DictConfig, run_dir: Path, folder: Path) -> "object | bool":
    """A W&B run of its own (job_type evaluate) beside the training run's, in the same group, its files in
    ``folder``; False without W&B."""
    from hydra.utils import instantiate

    node = OmegaConf.select(cfg, "logger.wandb")
    if node is None:
        return False
    group = custom_resolvers.sweep_name(started_with(run_dir).mode, str(run_dir))
    return instantiate(
        node, id=None, name=f"{run_dir.name}-{folder.name}", group=group, job_type="evaluate", save_dir=str(folder)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder (also accepted as run=<folder>)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run's config, e.g. eval.rollout_steps=100")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a path to a .ckpt file")
    args = parser.parse_args()
    run_dir = Path(args.run.removeprefix("run=")).resolve()
    if not (run_dir / SAVED_CONFIG).is_file():
        parser.error(f"{args.run} is not a run folder: it has no {SAVED_CONFIG}")
    try:
        cfg = evaluation_config(run_dir, args.overrides)
        find_checkpoint(run_dir, args.checkpoint)
    except (DamagedFileError, FileNotFoundError, ValueError) as error:
        parser.exit(1, f"evaluate.py: {error}\n")
    if FOLDER_VARIABLE in os.environ:  # another rank of this evaluation
        folder = Path(os.environ[FOLDER_VARIABLE])
    else:
        named = [*args.overrides, *([] if args.checkpoint == "best" else [f"checkpoint={args.checkpoint}"])]
        folder = evaluation_folder(run_dir, named)
        os.environ[FOLDER_VARIABLE] = str(folder)
        (folder / EVAL_CONFIG).write_text(OmegaConf.to_yaml(cfg))
        (folder / EVAL_OVERRIDES).write_text(OmegaConf.to_yaml(OmegaConf.create(args.overrides)))
    handlers = [logging.StreamHandler()]
    if custom_resolvers.process_rank() == 0:
        handlers.append(logging.FileHandler(folder / EVAL_LOG, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s", handlers=handlers
    )
    evaluate(run_dir, args.checkpoint, cfg, folder)


if __name__ == "__main__":
    main()
