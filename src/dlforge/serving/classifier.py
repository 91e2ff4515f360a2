"""Serving image classifiers, and what every classifier's serving shares (graph, answers, reports).

Graph: ``images`` float (N, C, H, W) in [0, 1] (normalization inside) -> ``logits``, ``probabilities``.
Predict: ``image=<file>`` prints the top classes, ``image=<folder>`` writes a CSV. App panels:
``digit`` (draw one: an MNIST classifier) and ``photo`` (upload one: any image classifier).
"""

import csv
import logging
import sys
import time
from pathlib import Path
from typing import IO, Any

import torch
from omegaconf import DictConfig
from torch import nn

from dlforge.errors import DlforgeError
from dlforge.models.classifier import ClassifierModule
from dlforge.outputs import atomic_write
from dlforge.preprocess import ImageInputError, ImageTooLarge, load_image, style_for, to_png
from dlforge.registry import register_serving
from dlforge.serving.served import ServedModel, card_header, write_json_answer
from dlforge.serving.web import AppContext, BadRequest, classes, data_url, since

log = logging.getLogger("dlforge")

CLASSIFIER_OUTPUTS = [
    {"name": "logits", "dtype": "float32", "shape": ["batch", "classes"]},
    {"name": "probabilities", "dtype": "float32", "shape": ["batch", "classes"], "note": "softmax of logits"},
]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class ClassifierGraph(nn.Module):
    """A classifier with plain outputs: inputs -> (logits, probabilities)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(inputs).float()
        return logits, logits.softmax(dim=-1)


def top_classes(row: list[float], names: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, best first (of two classes only the best: the other is the rest)."""
    k = 1 if len(names) == 2 else max(1, min(k, len(names)))
    order = sorted(range(len(row)), key=lambda i: -row[i])[:k]
    return [(names[i], row[i]) for i in order]


def write_predictions(
    out: IO[str], items: list[str], labels: list[str], probs: list[list[float]], names: list[str], column: str
) -> None:
    """CSV: the input (``column``), label, probability (of that label), then one column per class."""
    writer = csv.writer(out)
    writer.writerow([column, "label", "probability", *(f"p_{name}" for name in names)])
    for item, label, row in zip(items, labels, probs, strict=True):
        writer.writerow([item, label, f"{max(row):.6f}", *(f"{p:.6f}" for p in row)])


class ClassifierServing(ServedModel):
    """What every classifier serves: a graph of logits and probabilities, and reports of them."""

    @classmethod
    def graph(cls, model: nn.Module) -> nn.Module:
        return ClassifierGraph(model).eval()

    def report(
        self, cfg: DictConfig, items: list[str], probs: torch.Tensor, column: str, single: bool
    ) -> dict[str, Any]:
        """Print one input's top classes, or write every input's probabilities as CSV (or JSON)."""
        names = self.class_names
        rows = probs.tolist()
        labels = [names[i] for i in probs.argmax(dim=1).tolist()] if len(rows) else []
        results = [
            {
                column: item,
                "label": label,
                "probability": max(row),
                "top": [{"label": n, "probability": p} for n, p in top_classes(row, names, cfg.top_k)],
                "probabilities": dict(zip(names, row, strict=True)),
            }
            for item, label, row in zip(items, labels, rows, strict=True)
        ]
        output = cfg.get("output")
        if cfg.get("json"):
            return write_json_answer(output, self, "predictions", results, single)
        if single:
            for name, p in top_classes(rows[0], names, cfg.top_k):
                print(f"{name}\t{p:.4f}", flush=True)
            return {"label": labels[0], "probability": results[0]["probability"], "top": results[0]["top"]}
        output = output or str(Path(cfg.paths.output_dir) / "predictions.csv")
        if output == "-":
            write_predictions(sys.stdout, items, labels, rows, names, column)
        else:
            with atomic_write(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
                write_predictions(f, items, labels, rows, names, column)
            counts = ", ".join(f"{labels.count(name)} {name}" for name in names if name in labels)
            print(f"{len(items)} {column}s: {counts}; predictions in {output}", flush=True)
        return {"count": len(items), "output": output}


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DlforgeError(f"no image file or folder at {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DlforgeError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


@register_serving(ClassifierModule)
class ImageClassifierModel(ClassifierServing):
    task = "image_classification"
    what = "an image classifier"
    panels = ("digit", "photo")

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        return "channels" in (model.hparams.get("data") or {})

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        shape = [data["channels"], data["height"], data["width"]]
        return {
            **card_header(model, cls.task),
            "class_names": list(data["class_names"]),
            "data": {key: data[key] for key in ("name", "channels", "height", "width", "mean", "std")},
            "normalization": "in the graph: inputs are pixels in [0, 1] (data.mean/std for reference)",
            "preprocess": style_for(data),
            "inputs": [{"name": "images", "dtype": "float32", "shape": ["batch", *shape], "range": [0, 1]}],
            "outputs": CLASSIFIER_OUTPUTS,
        }

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        data = model.hparams.data
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand(n, data["channels"], data["height"], data["width"], generator=generator),)

    @property
    def spec(self) -> dict[str, Any]:
        """Shape and data set name: what :func:`dlforge.preprocess.prepare` needs."""
        return self.card["data"]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for images (N, C, H, W) in [0, 1]."""
        return torch.from_numpy(self.run(images.float().cpu().numpy())[1])

    def predict(self, cfg: DictConfig) -> dict[str, Any]:
        """Classify ``cfg.image`` (a file: printed) or every image in it (a folder: a CSV)."""
        if cfg.get("image") is None:
            raise DlforgeError(
                f"predict does not handle {self.kind} models with text= or input=: "
                "pass image=<file or folder>"
            )
        source = Path(str(cfg.image)).expanduser()
        single = source.is_file()
        paths, images = [], []
        for path in [source] if single else image_files(source):
            try:
                images.append(load_image(path, self.spec, cfg.preprocess))
                paths.append(str(path))
            except ImageInputError as err:
                if single:
                    raise DlforgeError(f"{path}: {err}") from None
                log.warning("skipping %s: %s", path, err)
        if not images:
            raise DlforgeError(f"none of the files in {source} is a readable image")
        probs = torch.cat([self.classify(batch) for batch in torch.stack(images).split(cfg.batch_size)])
        return self.report(cfg, paths, probs, "image", single)

    def panel_info(self) -> dict[str, Any]:
        return {"input": [self.spec["channels"], self.spec["height"], self.spec["width"]]}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from typing import Annotated

        from fastapi import File, UploadFile

        limits = context.limits

        @app.post("/api/classify/{panel}")
        def classify(panel: str, image: Annotated[UploadFile, File()]) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model(panel)
            if not isinstance(model, ImageClassifierModel):
                raise BadRequest(f"the {panel} panel does not classify images", 404)
            data = image.file.read(limits.upload_bytes + 1)
            try:
                pixels = load_image(
                    data, model.spec, context.preprocess, limits.max_pixels, limits.upload_bytes
                )
            except ImageTooLarge as err:
                raise BadRequest(str(err), 413) from None
            except ImageInputError as err:
                raise BadRequest(f"{image.filename or 'the upload'}: {err}", 415) from None
            answer = classes(model, model.classify(pixels[None])[0])
            answer["input"] = data_url(to_png(pixels, scale=4))
            answer["ms"] = since(start)
            return answer
