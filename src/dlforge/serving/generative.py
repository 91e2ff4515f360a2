"""Serving generators of images (GAN, VAE): sampling, interpolation, latent arithmetic, the app's sampler.

Graph: ``z`` float (N, latent_dim) [+ ``labels`` int64 (N,)] -> ``images`` in [0, 1]. Generate
(``python -m dlforge.generate``), by ``mode=``:

- ``grid``: ``n`` samples from seed ``seed`` as one PNG grid (``singles=true``: also one PNG each);
  ``label=7`` for conditional models (without it, each row keeps one latent across all classes).
- ``interpolate``: a strip from the latent of each seed in ``seeds`` to the next in ``steps``
  images (spherical interpolation, ``slerp=false`` for straight lines); one row per pair.
- ``arithmetic``: latent vector arithmetic ``A - B + C`` (Radford et al. 2015, Fig. 7). Latents
  are grouped by the class a ``classifier`` checkpoint assigns to their samples (conditional
  models: by their label; their code is the latent plus the one-hot class), each group's
  ``group_size`` members are averaged, and each row shows the means of A, B, C and A - B + C.

App panel: ``generator`` (a seed, a class, one latent coordinate on a slider).
"""

import logging
import math
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from dlforge.checkpoint import check_same_data, class_index, class_names, load_model
from dlforge.errors import DlforgeError
from dlforge.models.base import GenerativeModule
from dlforge.models.classifier import ImageClassifier
from dlforge.outputs import write_json
from dlforge.preprocess import to_png
from dlforge.registry import register_serving
from dlforge.serving.served import ServedModel, card_header
from dlforge.serving.web import AppContext, BadRequest, data_url, since
from dlforge.viz import save_grid

log = logging.getLogger("dlforge")

DEFAULT_NAMES = {"grid": "samples.png", "interpolate": "interpolation.png", "arithmetic": "arithmetic.png"}


class GeneratorGraph(nn.Module):
    """A generator's decoder: latent vectors (and class labels) -> images in [0, 1]."""

    def __init__(self, model: GenerativeModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode_latent(z, labels).float()


def example_latents(model: GenerativeModule, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` prior draws (and cycling class labels for a conditional generator), seeded."""
    z = model.sample_latent(n, torch.Generator().manual_seed(seed)).cpu()
    if model.num_classes > 0:
        return z, torch.arange(n) % model.num_classes
    return (z,)


def seed_latents(model: GenerativeModule, seeds: list[int]) -> torch.Tensor:
    """One latent per seed: the first latent ``model.sample_latent`` draws from that seed."""
    return torch.cat([model.sample_latent(1, torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def decode(
    model: GenerativeModule, z: torch.Tensor, labels: torch.Tensor | None, batch: int = 500
) -> torch.Tensor:
    """Decode latents in batches; images in [0, 1] on the CPU."""
    parts = []
    for start in range(0, len(z), batch):
        part = None if labels is None else labels[start : start + batch].to(model.device)
        parts.append(model.decode_latent(z[start : start + batch].to(model.device), part).float().cpu())
    return torch.cat(parts)


# --- grid -----------------------------------------------------------------------------------
def grid_samples(
    model: GenerativeModule, n: int, seed: int, label: int | None, nrow: int
) -> tuple[torch.Tensor, int]:
    """``n`` samples and the grid's row length. A conditional model without ``label`` gets one
    latent per row, decoded as every class along the row (a style x class table)."""
    generator = torch.Generator().manual_seed(seed)
    if not model.num_classes:
        return decode(model, model.sample_latent(n, generator), None), nrow
    if label is not None:
        return decode(model, model.sample_latent(n, generator), torch.full((n,), label)), nrow
    k = model.num_classes
    z = model.sample_latent(-(-n // k), generator).repeat_interleave(k, dim=0)[:n]
    return decode(model, z, torch.arange(n) % k), k


# --- interpolation --------------------------------------------------------------------------
def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two latents at fractions ``t`` (White 2016): the path keeps
    the norm typical of Gaussian latents; falls back to straight lines for (anti)parallel ends."""
    t = t[:, None]
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def interpolation(
    model: GenerativeModule, seeds: list[int], steps: int, label: int | None, spherical: bool = True
) -> torch.Tensor:
    """One row of ``steps`` images from each seed's latent to the next seed's."""
    if len(seeds) < 2 or steps < 2:
        raise DlforgeError(f"interpolate needs at least 2 seeds and 2 steps, got seeds={seeds} steps={steps}")
    if model.num_classes and label is None:
        raise DlforgeError("this model is conditional: pass label=<class> to interpolate within that class")
    ends = seed_latents(model, seeds).cpu()
    t = torch.linspace(0, 1, steps)
    rows = [slerp(a, b, t) if spherical else (1 - t[:, None]) * a + t[:, None] * b for a, b in pairwise(ends)]
    z = torch.cat(rows)
    labels = None if not model.num_classes else torch.full((len(z),), label)
    return decode(model, z, labels)


# --- arithmetic -----------------------------------------------------------------------------
def load_classifier(path: str | Path, model: GenerativeModule) -> ImageClassifier:
    """An image classifier of the generator's data set (same image shape), on the generator's device."""
    classifier = load_model(path, ImageClassifier, model.device, what="an image classifier")
    check_same_data(
        classifier, model.hparams.data, "the generator's data", keys=("channels", "height", "width")
    )
    return classifier


@torch.no_grad()
def grouped_codes(
    model: GenerativeModule,
    pool: int,
    seed: int,
    classifier: ImageClassifier | None = None,
    min_confidence: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of ``pool`` prior samples and the class of each (-1: below ``min_confidence``).

    A code is the latent, plus the one-hot class for a conditional model. The class is the
    classifier's prediction on the decoded sample, or the conditional model's label.
    """
    generator = torch.Generator().manual_seed(seed)
    z = model.sample_latent(pool, generator).cpu()
    labels = torch.randint(model.num_classes, (pool,), generator=generator) if model.num_classes else None
    if classifier is None:
        if labels is None:
            raise DlforgeError(
                "mode=arithmetic groups samples by class: pass arithmetic.classifier=<image-classifier "
                "checkpoint of the same data set> (e.g. from python train.py model=lenet data=...)"
            )
        classes = labels
    else:
        images = decode(model, z, labels)
        probs = torch.cat(
            [classifier(part.to(classifier.device)).softmax(-1).cpu() for part in images.split(500)]
        )
        confidence, classes = probs.max(dim=1)
        classes = torch.where(confidence >= min_confidence, classes, -1)
    if labels is not None:
        z = torch.cat([z, torch.nn.functional.one_hot(labels, model.num_classes).float()], dim=1)
    return z, classes


def split_code(model: GenerativeModule, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes back into latents and (for a conditional model) class vectors."""
    if not model.num_classes:
        return codes, None
    return codes[:, : model.latent_dim], codes[:, model.latent_dim :]


def vector_arithmetic(
    codes: torch.Tensor,
    classes: torch.Tensor,
    terms: tuple[int, int, int],
    rows: int,
    group_size: int,
    seed: int,
    names: list[str],
) -> torch.Tensor:
    """``rows`` rows of [mean A, mean B, mean C, mean A - mean B + mean C] codes (4 per row)."""
    generator = torch.Generator().manual_seed(seed)
    members = {}
    for term, cls in zip("abc", terms, strict=True):
        index = (classes == cls).nonzero().flatten()
        if len(index) < group_size:
            raise DlforgeError(
                f"arithmetic.{term}={names[cls]}: only {len(index)} of {len(classes)} samples fall in that "
                f"class, {group_size} needed; raise arithmetic.pool= or lower arithmetic.group_size= "
                "or arithmetic.min_confidence="
            )
        members[term] = index
    out = []
    for _ in range(rows):
        means = [
            codes[index[torch.randperm(len(index), generator=generator)[:group_size]]].mean(dim=0)
            for index in members.values()
        ]
        out += [*means, means[0] - means[1] + means[2]]
    return torch.stack(out)


@torch.no_grad()
def arithmetic(cfg: DictConfig, model: GenerativeModule, out: Path) -> torch.Tensor:
    """Run ``mode=arithmetic``; writes ``<output stem>.json`` with the groups and result classes."""
    spec = cfg.arithmetic
    if any(spec[t] is None for t in "abc"):
        raise DlforgeError(
            "mode=arithmetic needs the classes A, B, C of A - B + C: arithmetic.a=... arithmetic.b=... "
            "arithmetic.c=... (class indexes or names)"
        )
    classifier = load_classifier(spec.classifier, model) if spec.classifier else None
    names = class_names(classifier if classifier is not None else model)
    terms = tuple(class_index(spec[t], names, f"arithmetic.{t}") for t in "abc")
    codes, classes = grouped_codes(model, spec.pool, cfg.seed, classifier, spec.min_confidence)
    result_codes = vector_arithmetic(codes, classes, terms, spec.rows, spec.group_size, cfg.seed, names)
    z, vectors = split_code(model, result_codes)
    images = decode(model, z, vectors)
    summary: dict[str, Any] = {
        "expression": " - ".join(names[t] for t in terms[:2]) + f" + {names[terms[2]]}",
        "grouped_by": f"classifier {spec.classifier}" if classifier is not None else "label",
        "group_sizes": {names[t]: int((classes == t).sum()) for t in terms},
        "pool": spec.pool,
        "rows": spec.rows,
        "columns": ["mean A", "mean B", "mean C", "A - B + C"],
    }
    if classifier is not None:
        predicted = classifier(images[3::4].to(classifier.device)).argmax(-1).cpu()
        summary["result_classes"] = {
            names[k]: int((predicted == k).sum()) for k in predicted.unique().tolist()
        }
        log.info("A - B + C = %s: results classified as %s", summary["expression"], summary["result_classes"])
    write_json(out.with_suffix(".json"), summary)
    return images


def write_images(cfg: DictConfig, model: GenerativeModule) -> Path:
    """Write the image ``cfg.mode`` asks for (and ``singles``) and return its path."""
    if cfg.mode not in DEFAULT_NAMES:
        raise DlforgeError(f"mode={cfg.mode}: choose one of {', '.join(DEFAULT_NAMES)}")
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / DEFAULT_NAMES[cfg.mode]
    if out.suffix.lower() != ".png":
        raise DlforgeError(f"output={out}: give a .png path")
    label = None
    if cfg.label is not None:
        if not model.num_classes:
            raise DlforgeError(
                f"label={cfg.label}: this {model.kind} is not conditional (train model=cgan for labels)"
            )
        label = class_index(cfg.label, class_names(model), "label")
    nrow = cfg.nrow
    if cfg.mode == "grid":
        images, nrow = grid_samples(model, cfg.n, cfg.seed, label, cfg.nrow)
    elif cfg.mode == "interpolate":
        images = interpolation(model, list(cfg.seeds), cfg.steps, label, cfg.slerp)
        nrow = cfg.steps
    else:
        images, nrow = arithmetic(cfg, model, out), 4
    save_grid(images, out, nrow=nrow)
    if cfg.singles:
        folder = out.with_suffix("")
        for i, image in enumerate(images):
            save_grid(image[None], folder / f"{i:04d}.png", padding=0)
        log.info("%d single images in %s", len(images), folder)
    return out


@register_serving(GenerativeModule)
class GeneratorModel(ServedModel):
    task = "image_generation"
    what = "a generative model (GAN or VAE)"
    checks_on_data = False
    examples = "prior draws"
    panels = ("generator",)
    predict_hint = "sample a generator with python -m dlforge.generate"

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.get("data") or {})
        conditional = model.num_classes > 0
        with torch.no_grad():
            probe = GeneratorGraph(model).eval()(*example_latents(model, 1, seed=0))
        inputs = [{"name": "z", "dtype": "float32", "shape": ["batch", model.latent_dim], "prior": "normal"}]
        if conditional:
            inputs.append({"name": "labels", "dtype": "int64", "shape": ["batch"]})
        names = data.get("class_names") or [str(k) for k in range(model.num_classes)]
        return {
            **card_header(model, cls.task),
            "latent_dim": model.latent_dim,
            "num_classes": model.num_classes,
            "class_names": list(names) if conditional else [],
            "data": {"name": data.get("name")},
            "inputs": inputs,
            "outputs": [
                {"name": "images", "dtype": "float32", "shape": ["batch", *probe.shape[1:]], "range": [0, 1]}
            ],
        }

    @classmethod
    def graph(cls, model: Any) -> nn.Module:
        return GeneratorGraph(model).eval()

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        return example_latents(model, n, seed)

    @classmethod
    def write_samples(cls, cfg: DictConfig, model: Any) -> Path:
        return write_images(cfg, model)

    @property
    def latent_dim(self) -> int:
        return int(self.card["latent_dim"])

    @property
    def num_classes(self) -> int:
        return int(self.card["num_classes"])

    def latent(self, n: int, seed: int) -> torch.Tensor:
        """``n`` prior draws N(0, I), reproducible by ``seed`` (the same as ``model.sample(n, seed)``)."""
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] for latent vectors (and class labels of a conditional model)."""
        inputs = [z.float().cpu().numpy()]
        if self.num_classes > 0:
            if labels is None:
                labels = torch.arange(len(z)) % self.num_classes
            inputs.append(labels.long().cpu().numpy())
        return torch.from_numpy(self.run(*inputs)[0])

    def panel_info(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel, Field

        class Sample(BaseModel):
            seed: int = Field(0, ge=0, le=2**31 - 1)
            label: int | None = Field(None, ge=0)
            dim: int = Field(0, ge=0)
            value: float | None = Field(None, ge=-10, le=10)

        @app.post("/api/sample")
        def sample(body: Sample) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("generator")
            assert isinstance(model, GeneratorModel)
            if body.dim >= model.latent_dim:
                raise BadRequest(f"dim must be below the latent size {model.latent_dim}, not {body.dim}")
            labels = None
            if model.num_classes > 0:
                label = body.label or 0
                if label >= model.num_classes:
                    raise BadRequest(f"label must be below {model.num_classes}, not {label}")
                labels = torch.tensor([label])
            z = model.latent(1, body.seed)
            if body.value is not None and math.isfinite(body.value):
                z[0, body.dim] = body.value
            image = model.generate(z, labels)[0]
            scale = max(1, 224 // max(image.shape[1:]))
            return {
                "image": data_url(to_png(image, scale=scale)),
                "latent": [round(v, 4) for v in z[0].tolist()],
                "label": None if labels is None else model.class_names[int(labels[0])],
                "ms": since(start),
            }
