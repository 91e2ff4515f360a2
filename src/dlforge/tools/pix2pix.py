"""Translate one picture with a pix2pix checkpoint: ``python -m dlforge.pix2pix ckpt_path=... input=a.png``.

Any size and colour of input: it is resized to the model's size, converted to its channels and
turned into a model input exactly as in training (the edge extraction of an edges model, the
luminance of a colourization model). ``sketch=true`` takes the picture as a drawing already (dark
lines on white) instead of extracting its edges. Writes the translation to ``output`` (at the
model's size, or the input's with ``keep_size=true``) and the model's input as ``model_input.png``
in the run dir.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.utils import save_image

from dlforge.checkpoint import load_model, pick_device
from dlforge.cli import hydra_entry
from dlforge.data.paired import make_input, match_channels, to_grey
from dlforge.errors import DlforgeError, first_line
from dlforge.models.pix2pix import Pix2Pix
from dlforge.outputs import atomic_write

log = logging.getLogger("dlforge")


def read_picture(path: str | Path) -> torch.Tensor:
    """A PNG/JPEG/... file as a (1, 3, H, W) float batch in [0, 1]."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DlforgeError(f"no picture at {path}; pass input=<a .png or .jpg file>")
    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise DlforgeError(f"cannot decode {path} as an image ({first_line(err)})") from None
    return image[None].float() / 255


def model_input(picture: torch.Tensor, spec: dict, sketch: bool = False) -> torch.Tensor:
    """What the model sees for a (1, C, H, W) picture in [0, 1]: resized and transformed as in training."""
    size = (spec["height"], spec["width"])
    if sketch:
        if spec["task"] != "edges":
            raise DlforgeError(f"sketch=true is for edges models; this one translates {spec['task']} inputs")
        # the darkest pixel of each cell keeps thin pencil lines through any downscaling
        dark = 1 - F.adaptive_max_pool2d(1 - to_grey(picture), size)
        lines = (dark < 0.5).float()
        return 1 - lines if spec["edges"].get("invert", True) else lines
    resized = F.interpolate(picture, size=size, mode="bilinear", antialias=True, align_corners=False)
    return make_input(match_channels(resized.clamp(0, 1), spec["out_channels"]), spec)


def translate(cfg: DictConfig) -> Path:
    model = load_model(cfg.ckpt_path, Pix2Pix, pick_device(cfg.device), what="a pix2pix model")
    device = model.device
    spec = model.hparams.data
    picture = read_picture(cfg.input)
    inputs = model_input(picture, spec, cfg.sketch).to(device)
    with torch.no_grad():
        output = model(inputs).clamp(0, 1)
    if cfg.keep_size:
        output = F.interpolate(output, size=picture.shape[-2:], mode="bilinear", align_corners=False).clamp(
            0, 1
        )
    run_dir = Path(cfg.paths.output_dir)
    target = Path(cfg.output).expanduser() if cfg.output else run_dir / "translated.png"
    for image, path in ((output, target), (inputs, run_dir / "model_input.png")):
        with atomic_write(path) as tmp:
            save_image(image.cpu(), str(tmp))
    log.info(
        "%s -> %s (%s model, input as the model saw it: %s)",
        cfg.input,
        target,
        spec["name"],
        run_dir / "model_input.png",
    )
    return target


@hydra_entry("pix2pix")
def main(cfg: DictConfig) -> None:
    translate(cfg)


if __name__ == "__main__":
    main()
