"""Draw from any generative checkpoint (GAN, VAE, WaveNet): ``python -m dlforge.generate ckpt_path=... n=64``.

What is drawn is the family's (``dlforge/serving/<family>.py``, ``ServedModel.write_samples``):

- an image generator (GAN, VAE), by ``mode=``: ``grid`` (``n`` samples from seed ``seed``; ``label=7``
  for conditional models), ``interpolate`` (a strip from each seed in ``seeds`` to the next in ``steps``
  images) or ``arithmetic`` (latent vector arithmetic ``A - B + C`` over latents grouped by class);
  one PNG, ``output`` (default: ``samples.png``, ``interpolation.png`` or ``arithmetic.png`` in the run
  dir ``outputs/generate/<time>/``);
- a text-to-image model (StackGAN) draws ``caption="a small 3 at the bottom right"`` ``n`` times, stage I
  beside stage II;
- a WaveNet speaks ``n`` clips of ``seconds`` (``label=7``: all that digit) at ``temperature``: ``output``
  (default ``samples.wav``) holds them one after another, ``<output stem>/NNNN.wav`` each one, and
  ``<output stem>.png`` pictures the first 16.

The written file's path is printed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlforge.checkpoint import load_model, pick_device
from dlforge.cli import hydra_entry, verbatim
from dlforge.models import DlforgeModule
from dlforge.serving import served_class

log = logging.getLogger("dlforge")


def generate(cfg: DictConfig) -> Path:
    """Write what ``cfg`` asks of the checkpoint's family and return the file's path."""
    model = load_model(cfg.ckpt_path, DlforgeModule, pick_device(cfg.device))
    return served_class(model).write_samples(cfg, model)


@hydra_entry("generate")
def _main(cfg: DictConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    print(generate(cfg), flush=True)


def main() -> None:
    sys.argv = [sys.argv[0], *(verbatim(arg, "caption") for arg in sys.argv[1:])]  # free text, as typed
    _main()


if __name__ == "__main__":
    main()
