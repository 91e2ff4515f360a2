"""Shared wiring for the Hydra command-line entry points (``train.py`` and ``python -m dlforge.<tool>``)."""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from dlforge import CONF_DIR
from dlforge.errors import DlforgeError

log = logging.getLogger("dlforge")


def quiet_library_chatter() -> None:
    """Drop Lightning's advertising tips and the CSV logger's note about Hydra's files in the run dir."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")
    )
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Turn ``task(cfg)`` into a Hydra main over ``conf/<config_name>.yaml``.

    A :class:`DlforgeError` becomes one line on stderr and exit status 2, instead of a traceback.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            quiet_library_chatter()
            try:
                return task(cfg)
            except DlforgeError as err:
                print(f"error: {err}", file=sys.stderr, flush=True)
                sys.exit(2)

        return hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(guarded)

    return decorate
