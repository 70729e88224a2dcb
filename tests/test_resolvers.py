import pytest
from omegaconf import OmegaConf

import custom_resolvers


def test_output_dir_routes_debug_runs():
    assert custom_resolvers.output_dir("2026-01-01/2026-01-01_10-00-00_sfno32x64", False).startswith("2026-01-01/")
    assert custom_resolvers.output_dir("2026-01-01/anything", True) == "debug"


def test_output_dir_rejects_non_boolean_debug():
    with pytest.raises(ValueError, match="debug=True or debug=False"):
        custom_resolvers.output_dir("scheme", "yes")


def test_prepend_underscore_leaves_no_trailing_separator():
    assert custom_resolvers.prepend_underscore("") == ""
    assert custom_resolvers.prepend_underscore("training.lr=0.1") == "_training.lr=0.1"


def test_abspath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert custom_resolvers.abspath("outputs/run") == str(tmp_path / "outputs" / "run")


def test_abspath_outside_a_run_stays_none():
    assert custom_resolvers.abspath(None) is None


def test_on_debug_picks_the_debug_value_only_for_debug_runs():
    assert custom_resolvers.on_debug(True, 4, None) == 4
    assert custom_resolvers.on_debug(False, 4, None) is None


def test_sweep_name_is_the_sweep_folder_of_a_multirun_job():
    from hydra.types import RunMode

    job = "/runs/2026-01-01/2026-01-01_10-00-00_multirun/0_sfno32x64"
    assert custom_resolvers.sweep_name(RunMode.MULTIRUN, job) == "2026-01-01_10-00-00_multirun"
    assert custom_resolvers.sweep_name(RunMode.RUN, "/runs/2026-01-01/2026-01-01_10-00-00_sfno32x64") is None


def test_accumulation_without_an_effective_batch_size_is_one_whatever_the_devices():
    assert custom_resolvers.accumulation(None, 16, 2) == 1


@pytest.mark.parametrize(
    ("devices", "expected"),
    [(1, False), (2, True), (-1, True), ("1", False), ("4", True), ([0], False), ([0, 1], True), ("0,1", True)],
)
def test_isdist(devices, expected):
    assert custom_resolvers.isdist(devices) is expected


def test_accumulation_turns_effective_batch_into_steps():
    assert custom_resolvers.accumulation(16, 16, 1) == 1
    assert custom_resolvers.accumulation(64, 16, 1) == 4
    assert custom_resolvers.accumulation(64, 16, 2) == 2


def test_accumulation_names_both_keys_when_it_cannot_divide():
    with pytest.raises(ValueError, match=r"training.effective_batch_size=20.*batch_size=16"):
        custom_resolvers.accumulation(20, 16, 1)


def test_resolvers_are_registered_once_whatever_imports_them():
    import importlib

    importlib.reload(custom_resolvers)
    importlib.reload(custom_resolvers)
    config = OmegaConf.create({"name": "${prepend_underscore:x}", "dist": "${isdist:[0,1]}"})
    assert config.name == "_x"
    assert config.dist is True


@pytest.mark.parametrize(("devices", "count"), [(1, 1), (2, 2), ("2", 2), ([0, 1], 2), ("0,1", 2), ("0,", 1)])
def test_device_count(devices, count):
    assert custom_resolvers.device_count(devices) == count


@pytest.mark.parametrize("devices", ["auto", -1, 0])
def test_accumulation_needs_a_known_number_of_devices(devices):
    with pytest.raises(ValueError, match=r"trainer.devices=.*pass trainer.devices=<number>"):
        custom_resolvers.accumulation(16, 4, devices)


def test_accumulation_counts_every_device_of_every_node():
    assert custom_resolvers.accumulation(64, 4, 2, 2) == 4
    assert custom_resolvers.accumulation(64, 4, [0, 1]) == 8


@pytest.mark.parametrize(
    ("environment", "rank"),
    [({}, 0), ({"LOCAL_RANK": "1"}, 1), ({"SLURM_PROCID": "3"}, 3), ({"RANK": "2", "LOCAL_RANK": "0"}, 2)],
)
def test_process_rank_reads_what_the_launchers_set(environment, rank, monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert custom_resolvers.process_rank() == rank
    assert custom_resolvers.on_rank_zero("zero", "other") == ("zero" if rank == 0 else "other")
    assert custom_resolvers.rank_prefix() == ("" if rank == 0 else f"[rank {rank}] ")
