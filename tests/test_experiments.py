"""The study presets: experiment=sfno_vs_fno's models and seeds, each model's own learning rate, and the
learning-rate search that chooses it."""

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tests.conftest import REPO, compose_config, compose_hydra_config

MODEL_FILES = sorted((REPO / "config" / "model").glob("*.yaml"))
CONTROLS = {"sfno", "fno", "fno_small", "sfno_th"}


def sweep_jobs(arguments: list[str]) -> list[dict[str, str]]:
    """The jobs `python train.py -m <arguments>` launches with Hydra's basic sweeper, each as {key: value}: the
    preset's hydra.sweeper.params first, then the command line, whose sweeps win for the same key."""
    parser = OverridesParser.create()
    fixed = [argument for argument in arguments if not parser.parse_override(argument).is_sweep_override()]
    sweeper = compose_hydra_config(fixed).hydra.sweeper
    params = [f"{key}={value}" for key, value in OmegaConf.to_container(sweeper.params, resolve=True).items()]
    overrides = parser.parse_overrides([*params, *arguments])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [dict(override.split("=", 1) for override in job) for job in batch]


def declared_lr(model: str) -> float:
    return float(yaml.safe_load((REPO / "config" / "model" / f"{model}.yaml").read_text())["lr"])


def test_sfno_vs_fno_trains_the_sfno_and_its_three_controls_from_three_seeds():
    jobs = sweep_jobs(["experiment=sfno_vs_fno"])
    assert sorted((job["model"], job["seed"]) for job in jobs) == sorted(
        (model, str(seed)) for model in CONTROLS for seed in range(3)
    )


def test_the_command_line_chooses_other_seeds_and_models():
    jobs = sweep_jobs(["experiment=sfno_vs_fno", "seed=0,1,2,3,4", "model=sfno,sfno_wide"])
    assert sorted((job["model"], job["seed"]) for job in jobs) == sorted(
        (model, str(seed)) for model in ("sfno", "sfno_wide") for seed in range(5)
    )


def test_the_gpu_variant_runs_five_seeds_at_the_gpu_sizing():
    jobs = sweep_jobs(["experiment=sfno_vs_fno_gpu"])
    assert sorted((job["model"], job["seed"]) for job in jobs) == sorted(
        (model, str(seed)) for model in CONTROLS for seed in range(5)
    )
    gpu, job = compose_config(["experiment=gpu"]), compose_config(["experiment=sfno_vs_fno_gpu", "model=fno_small"])
    assert (job.batch_size, job.data.num_examples, job.training.max_epochs) == (
        gpu.batch_size,
        gpu.data.num_examples,
        gpu.training.max_epochs,
    )
    assert job.training.lr == pytest.approx(2 * declared_lr("fno_small")), "sqrt of the 4x batch growth"


@pytest.mark.parametrize("path", MODEL_FILES, ids=[path.stem for path in MODEL_FILES])
def test_each_model_trains_at_the_learning_rate_its_file_declares(path):
    model = path.stem
    assert "lr" in yaml.safe_load(path.read_text()), f"config/model/{model}.yaml declares its own lr"
    cfg = compose_config([f"model={model}"])
    assert cfg.model.lr == cfg.training.optimizer.lr == declared_lr(model)
    assert compose_config([f"model={model}", "training.lr=1e-3"]).training.optimizer.lr == 1e-3, "a run's own wins"


def test_each_job_of_the_comparison_trains_at_its_models_learning_rate():
    for job in sweep_jobs(["experiment=sfno_vs_fno"]):
        cfg = compose_config(["experiment=sfno_vs_fno", *(f"{key}={value}" for key, value in job.items())])
        assert cfg.training.optimizer.lr == declared_lr(job["model"]), job


def test_the_learning_rate_search_is_a_fixed_optuna_budget_over_the_learning_rate_alone():
    cfg = compose_hydra_config(["hparams_search=lr", "model=fno_small"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.n_trials == 8 and sweeper.sampler.n_startup_trials < sweeper.n_trials
    assert dict(sweeper.params) == {"training.lr": "tag(log, interval(3e-4, 3e-2))"}
    assert cfg.training.lr == declared_lr("fno_small"), "the recipe is the model's own until a trial sets the rate"
    trial = compose_config(["hparams_search=lr", "model=fno_small", "training.lr=0.0021"])
    assert trial.training.optimizer.lr == 0.0021
    default = compose_config([]).training
    assert trial.training.max_epochs * 4 == default.max_epochs, "a trial is a quarter of the default recipe"
    assert trial.training.rollout_start_epoch / trial.training.max_epochs < 1, "each trial trains on rollouts too"
