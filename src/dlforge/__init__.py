"""dlforge: a PyTorch Lightning + Hydra laboratory for classic deep-learning models."""

from pathlib import Path

__version__ = "0.1.0"

#: The Hydra configuration shared by ``train.py`` and every ``python -m dlforge.<tool>``.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
