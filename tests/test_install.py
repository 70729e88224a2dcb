"""The installation: pyproject.toml's ranges, the locks compiled from them, and an environment built from the locks."""

import re
import tomllib
from importlib.metadata import distributions

from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

LOCKS = ("requirements.txt", "requirements-dev.txt")
# Installed by the installer, not by the project.
INSTALLER_TOOLS = {"pip", "setuptools", "wheel"}
# PyTorch's CUDA build (Linux with a GPU) brings its own runtime libraries, which the lock of the CPU build cannot name.
CUDA_BUILD = re.compile(r"nvidia-.*|triton")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, Version]:
    pins = {}
    for lock in LOCKS:
        for line in (REPO / lock).read_text().splitlines():
            if line and not line.startswith("#"):
                name, version = line.split("==")
                pins[normalized(name)] = Version(version)
    return pins


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_range_admits_its_locked_version_and_torch_stays_pinned():
    pins = locked()
    requirements = [
        Requirement(line) for line in [*project()["dependencies"], *project()["optional-dependencies"]["dev"]]
    ]
    for requirement in requirements:
        name = normalized(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not locked: run make lock"
        assert requirement.specifier.contains(pins[name]), f"{requirement} does not admit the locked {pins[name]}"
    (torch,) = (requirement for requirement in requirements if requirement.name == "torch")
    assert str(torch.specifier) == "==2.13.0", "a torch range lets pip pull a multi-GB CUDA build"
    assert project()["requires-python"] == ">=3.11"


def test_every_line_of_the_locks_is_an_exact_pin():
    for lock in LOCKS:
        for line in (REPO / lock).read_text().splitlines():
            assert not line or line.startswith("#") or re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line), line


def test_this_environment_holds_nothing_the_locks_do_not_name():
    pins = locked()
    own = normalized(project()["name"])
    installed = {normalized(distribution.metadata["Name"]) for distribution in distributions()}
    unlocked = {name for name in installed - pins.keys() - INSTALLER_TOOLS - {own} if not CUDA_BUILD.fullmatch(name)}
    assert not unlocked, f"installed but not in {' or '.join(LOCKS)}: {sorted(unlocked)} (make setup removes them)"
