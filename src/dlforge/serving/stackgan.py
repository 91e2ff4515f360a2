"""Serving text to image (StackGAN): a caption in, stage-I and stage-II pictures out.

Graph: ``tokens`` int64 (N, max_len) (the caption's word ids, PAD 0) and ``z`` float (N, latent_dim)
-> ``stage_one`` (N, C, H/2, W/2) and ``stage_two`` (N, C, H, W) in [0, 1]; the card holds the
vocabulary, so a caption is encoded as the training captions were. Generate
(``python -m dlforge.generate ckpt_path=... caption="a small 3 at the bottom right" n=16``): one row per
sample, stage I (up-sampled) beside stage II. App panel: ``caption`` (type a caption, see both stages).
"""

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from dlforge.data.captioned import encode_caption
from dlforge.errors import DlforgeError
from dlforge.models.stackgan import StackGAN
from dlforge.preprocess import to_png
from dlforge.registry import register_serving
from dlforge.serving.served import ServedModel, card_header
from dlforge.serving.web import AppContext, BadRequest, data_url, since
from dlforge.viz import save_grid

log = logging.getLogger("dlforge")


class TextToImageGraph(nn.Module):
    """Caption ids and noise -> (stage I, stage II) pictures in [0, 1] (the code is the embedding's mean)."""

    def __init__(self, model: StackGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.draw(tokens, z)


def caption_tokens(caption: str, spec: dict[str, Any], n: int) -> torch.Tensor:
    """The caption's ids, ``n`` times (an unknown word: one line naming it)."""
    if not caption or not caption.strip():
        raise DlforgeError('pass a caption, e.g. caption="a small 3 at the bottom right"')
    return encode_caption(caption, spec)[None].repeat(n, 1)


@register_serving(StackGAN)
class TextToImageModel(ServedModel):
    task = "text_to_image"
    what = "a text-to-image model (model=stackgan)"
    checks_on_data = False
    examples = "random captions and prior draws"
    panels = ("caption",)
    predict_hint = 'draw a caption with python -m dlforge.generate ckpt_path=... caption="..."'

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        c, h, w = data["channels"], data["height"], data["width"]
        text = {key: data[key] for key in ("vocab", "max_len")}
        outputs = [
            {"name": "stage_one", "dtype": "float32", "shape": ["batch", c, h // 2, w // 2], "range": [0, 1]},
            {"name": "stage_two", "dtype": "float32", "shape": ["batch", c, h, w], "range": [0, 1]},
        ]
        return {
            **card_header(model, cls.task),
            "data": {key: data.get(key) for key in ("name", "channels", "height", "width")},
            "text": text,
            "latent_dim": model.latent_dim,
            "inputs": [
                {"name": "tokens", "dtype": "int64", "shape": ["batch", data["max_len"]]},
                {"name": "z", "dtype": "float32", "shape": ["batch", model.latent_dim], "prior": "normal"},
            ],
            "outputs": outputs,
        }

    @classmethod
    def graph(cls, model: Any) -> nn.Module:
        return TextToImageGraph(model).eval()

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        data = model.hparams.data
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(1, len(data["vocab"]), (n, data["max_len"]), generator=generator)
        lengths = torch.randint(1, data["max_len"] + 1, (n,), generator=generator)
        tokens[torch.arange(data["max_len"])[None] >= lengths[:, None]] = 0
        return tokens, torch.randn(n, model.latent_dim, generator=generator)

    @classmethod
    def write_samples(cls, cfg: DictConfig, model: Any) -> Path:
        """``n`` drawings of ``cfg.caption`` from seed ``seed``: one row each, stage I beside stage II."""
        if cfg.mode != "grid":
            raise DlforgeError(
                f"mode={cfg.mode}: a text-to-image model draws a caption (mode=grid, caption=...)"
            )
        out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "samples.png"
        if out.suffix.lower() != ".png":
            raise DlforgeError(f"output={out}: give a .png path")
        tokens = caption_tokens(str(cfg.get("caption") or ""), model.hparams.data, cfg.n)
        generator = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            one, two = model.draw(tokens.to(model.device), generator=generator)
        one = F.interpolate(one, size=two.shape[2:], mode="nearest")
        save_grid(torch.stack([one, two], dim=1).flatten(0, 1).cpu(), out, nrow=2)
        log.info("%d drawings of %r: stage I (left, up-sampled) and stage II (right)", cfg.n, cfg.caption)
        return out

    @property
    def vocab(self) -> list[str]:
        return list(self.card["text"]["vocab"])

    def draw(self, caption: str, n: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage-I and stage-II pictures (n, C, h, w) in [0, 1] of a caption, reproducible by ``seed``."""
        spec = {**self.card["data"], **self.card["text"]}
        tokens = caption_tokens(caption, spec, n)
        z = torch.randn(n, int(self.card["latent_dim"]), generator=torch.Generator().manual_seed(seed))
        one, two = self.run(tokens.numpy(), z.numpy())
        return torch.from_numpy(one), torch.from_numpy(two)

    def panel_info(self) -> dict[str, Any]:
        data = self.card["data"]
        return {"canvas": [data["channels"], data["height"], data["width"]], "words": len(self.vocab)}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel, Field

        class Caption(BaseModel):
            caption: str
            seed: int = Field(0, ge=0, le=2**31 - 1)

        @app.post("/api/caption")
        def caption(body: Caption) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("caption")
            assert isinstance(model, TextToImageModel)
            context.check_text(body.caption, "type a caption first")
            try:
                one, two = model.draw(body.caption, 1, body.seed)
            except DlforgeError as err:  # a word the model does not know
                raise BadRequest(str(err)) from None
            scale = max(1, 192 // two.shape[-1])
            return {
                "stage_one": data_url(to_png(one[0], scale=2 * scale)),
                "stage_two": data_url(to_png(two[0], scale=scale)),
                "ms": since(start),
            }
