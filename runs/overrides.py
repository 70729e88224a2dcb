"""Command-line overrides as Hydra passes them to a run (`hydra.overrides.task`)."""

import re


def override_key(override: str) -> str:
    """The key of a command-line override: `+a.b=1` -> `a.b`."""
    return re.match(r"[~+]*([^=]*)", override).group(1)
