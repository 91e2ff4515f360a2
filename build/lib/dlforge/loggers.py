"""Experiment-tracking loggers that behave on machines without network or credentials."""

from __future__ import annotations

import logging
import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"


def _has_api_key(host: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def _reachable(host: str, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def wandb_mode(requested: str | None = None) -> tuple[str, str]:
    """The W&B mode and why: ``requested`` or ``$WANDB_MODE`` if set, else online only when possible."""
    if requested or os.environ.get("WANDB_MODE"):
        return str(requested or os.environ["WANDB_MODE"]), "as asked"
    host = _wandb_host()
    if not _has_api_key(host):
        return "offline", "no API key (set WANDB_API_KEY or run `wandb login`)"
    if not _reachable(host):
        return "offline", f"{host} is not reachable"
    return "online", "API key and network found"


def sweep_group() -> str | None:
    """One W&B group per multirun (named after the sweep dir); None for a single run."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"sweep-{Path(HydraConfig.get().sweep.dir).name}"
    return None


def wandb_logger(
    save_dir: str, project: str = "dlforge", mode: str | None = None, group: str | None = None, **kwargs: Any
) -> WandbLogger:
    """A ``WandbLogger`` that goes offline by itself when it cannot go online, and never prompts."""
    mode, why = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=save_dir, project=project, mode=mode, group=group or sweep_group(), **kwargs
    )
    if mode == "offline":
        log.warning(
            "W&B runs offline (%s); the run is kept in %s/wandb/offline-run-*; upload it later with "
            "`wandb sync %s/wandb/offline-run-*`",
            why,
            save_dir,
            save_dir,
        )
    return logger
