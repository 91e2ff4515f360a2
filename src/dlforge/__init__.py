"""dlforge: a PyTorch Lightning + Hydra laboratory for classic deep-learning models."""

import os
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

#: The Hydra configuration shared by ``train.py`` and every ``python -m dlforge.<tool>``: the repository's
#: top-level ``conf/``, reached through the package's ``conf`` link in a checkout and shipped as package
#: data inside the wheel.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")

# The tools (train, evaluate, predict, generate, export, app, ...) live together in ``tools/``, apart from
# the library, and are still the modules ``dlforge.<tool>``: ``python -m dlforge.predict``. ``tools/`` is
# a folder on this package's search path, not a package of its own, so each tool has one name.
__path__.append(str(Path(__file__).resolve().parent / "tools"))


def on_job_rank_zero(value: str) -> str | None:
    """``value`` in the job's global rank 0, None in its other processes: those started apart on several
    nodes (``srun``, ``torchrun``, ``NODE_RANK``), which share one run dir that rank 0 alone writes.
    ``conf/hydra/default.yaml`` sets ``hydra.output_subdir`` through it (the run's ``.hydra/`` records)."""
    ranks = (os.environ.get(name, "0") for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"))
    return value if all(rank == "0" for rank in ranks) else None


OmegaConf.register_new_resolver("dlforge.on_job_rank_zero", on_job_rank_zero, replace=True)
