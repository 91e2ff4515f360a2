"""dlforge: a PyTorch Lightning + Hydra laboratory for classic deep-learning models."""

from pathlib import Path

__version__ = "0.1.0"

#: The Hydra configuration shared by ``train.py`` and every ``python -m dlforge.<tool>``: the repository's
#: top-level ``conf/``, reached through the package's ``conf`` link in a checkout and shipped as package
#: data inside the wheel.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")

# The tools (train, evaluate, predict, generate, export, app, ...) live together in ``tools/``, apart from
# the library, and are still the modules ``dlforge.<tool>``: ``python -m dlforge.predict``. ``tools/`` is
# a folder on this package's search path, not a package of its own, so each tool has one name.
__path__.append(str(Path(__file__).resolve().parent / "tools"))
