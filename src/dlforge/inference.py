"""A trained model behind one interface, whether it comes from a checkpoint or an exported file.

Every servable model is described by a *card*: plain data saying what goes in and comes out
(input names, shapes and dtypes, class names, the text encoder's vocabulary and settings, the
latent size of a generator). ``python -m dlforge.export`` writes the card as the JSON beside the
exported file; for a checkpoint it is built from the hyper-parameters. The network itself is the
*graph*: a module with plain tensor inputs and outputs (normalization inside), which is what gets
exported and what runs a checkpoint, so a checkpoint and its export compute the same function:

- classifiers: ``images`` float (N, C, H, W) in [0, 1], ``tokens`` int64 (N, max_len), or ``waves``
  float (N, samples) in [-1, 1] at the card's sample rate -> ``logits``, ``probabilities`` (N, classes);
- generators (GAN, VAE): ``z`` float (N, latent_dim) [+ ``labels`` int64 (N,)] -> ``images`` in [0, 1].
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlforge import __version__
from dlforge.audio import AudioInputError, read_wav
from dlforge.checkpoint import load_model
from dlforge.data.text import TextEncoder
from dlforge.errors import CheckpointError, DlforgeError, first_line
from dlforge.models import AudioClassifier, DlforgeModule
from dlforge.models.base import GenerativeModule
from dlforge.models.classifier import ClassifierModule
from dlforge.preprocess import style_for

CARD_VERSION = 1
#: Exported formats and their file suffixes.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
CLASSIFIER_OUTPUTS = [
    {"name": "logits", "dtype": "float32", "shape": ["batch", "classes"]},
    {"name": "probabilities", "dtype": "float32", "shape": ["batch", "classes"], "note": "softmax of logits"},
]

#: A model in any form: numpy inputs (in the card's order) -> numpy outputs (in the card's order).
Runner = Callable[..., list[np.ndarray]]


class ClassifierGraph(nn.Module):
    """A classifier with plain outputs: inputs -> (logits, probabilities)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(inputs).float()
        return logits, logits.softmax(dim=-1)


class GeneratorGraph(nn.Module):
    """A generator's decoder: latent vectors (and class labels) -> images in [0, 1]."""

    def __init__(self, model: GenerativeModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode_latent(z, labels).float()


def graph_of(model: DlforgeModule) -> nn.Module:
    """The exportable graph of a loaded model (in eval mode)."""
    describe(model)  # refuses kinds that cannot be served
    graph = GeneratorGraph(model) if isinstance(model, GenerativeModule) else ClassifierGraph(model)
    return graph.eval()


def describe(model: DlforgeModule) -> dict[str, Any]:
    """The card of a loaded model: what its graph takes and gives, and how to prepare its inputs."""
    data = dict(model.hparams.get("data") or {})
    card: dict[str, Any] = {"card_version": CARD_VERSION, "dlforge_version": __version__, "kind": model.kind}
    classifier = isinstance(model, ClassifierModule)  # networks and scikit-learn baselines alike
    if classifier and "vocab" in data:
        return {
            **card,
            "task": "text_classification",
            "class_names": list(data["class_names"]),
            "data": {"name": data.get("name")},
            "text": {key: data[key] for key in ("vocab", "max_len", "padding", "tokenizer")},
            "inputs": [{"name": "tokens", "dtype": "int64", "shape": ["batch", data["max_len"]]}],
            "outputs": CLASSIFIER_OUTPUTS,
        }
    if classifier and "channels" in data:
        shape = [data["channels"], data["height"], data["width"]]
        return {
            **card,
            "task": "image_classification",
            "class_names": list(data["class_names"]),
            "data": {key: data[key] for key in ("name", "channels", "height", "width", "mean", "std")},
            "normalization": "in the graph: inputs are pixels in [0, 1] (data.mean/std for reference)",
            "preprocess": style_for(data),
            "inputs": [{"name": "images", "dtype": "float32", "shape": ["batch", *shape], "range": [0, 1]}],
            "outputs": CLASSIFIER_OUTPUTS,
        }
    if isinstance(model, AudioClassifier):
        rate = data["sample_rate"]
        return {
            **card,
            "task": "audio_classification",
            "class_names": list(data["class_names"]),
            "data": {key: data[key] for key in ("name", "sample_rate", "clip_samples")},
            "inputs": [
                {
                    "name": "waves",
                    "dtype": "float32",
                    "shape": ["batch", "samples"],
                    "range": [-1, 1],
                    "rate": rate,
                }
            ],
            "outputs": CLASSIFIER_OUTPUTS,
        }
    if isinstance(model, GenerativeModule):
        conditional = model.num_classes > 0
        with torch.no_grad():
            probe = GeneratorGraph(model).eval()(*example_latents(model, 1, seed=0))
        inputs = [{"name": "z", "dtype": "float32", "shape": ["batch", model.latent_dim], "prior": "normal"}]
        if conditional:
            inputs.append({"name": "labels", "dtype": "int64", "shape": ["batch"]})
        names = data.get("class_names") or [str(k) for k in range(model.num_classes)]
        return {
            **card,
            "task": "image_generation",
            "latent_dim": model.latent_dim,
            "num_classes": model.num_classes,
            "class_names": list(names) if conditional else [],
            "data": {"name": data.get("name")},
            "inputs": inputs,
            "outputs": [
                {"name": "images", "dtype": "float32", "shape": ["batch", *probe.shape[1:]], "range": [0, 1]}
            ],
        }
    raise DlforgeError(
        f"{model.kind} models cannot be exported or served: that takes a classifier (image, text or audio) "
        "or a generative model (GAN, VAE)"
    )


def example_latents(model: GenerativeModule, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` prior draws (and cycling class labels for a conditional generator), seeded."""
    z = model.sample_latent(n, torch.Generator().manual_seed(seed)).cpu()
    if model.num_classes > 0:
        return z, torch.arange(n) % model.num_classes
    return (z,)


def torch_runner(graph: nn.Module) -> Runner:
    @torch.no_grad()
    def run(*inputs: np.ndarray) -> list[np.ndarray]:
        outputs = graph(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs))
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return [out.detach().cpu().numpy() for out in outputs]

    return run


def onnx_runner(path: Path) -> Runner:
    """Run an ONNX file with onnxruntime on the CPU (as many threads as torch uses)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise CheckpointError(f"onnxruntime cannot load {path}: {first_line(err)}") from None
    names = [item.name for item in session.get_inputs()]

    def run(*inputs: np.ndarray) -> list[np.ndarray]:
        return session.run(None, dict(zip(names, inputs, strict=False)))

    return run


def torchscript_runner(path: Path) -> Runner:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise CheckpointError(f"cannot load TorchScript file {path}: {first_line(err)}") from None
    return torch_runner(module.eval())


def sidecar_of(path: Path) -> Path:
    """The JSON card beside an exported file (``model.onnx`` -> ``model.json``)."""
    return path.with_suffix(".json")


class ServedModel:
    """A model ready to run: its card, a runner, and where it came from."""

    def __init__(self, card: dict[str, Any], run: Runner, source: str, backend: str) -> None:
        self.card, self.run, self.source, self.backend = card, run, source, backend

    @property
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])


class ImageClassifierModel(ServedModel):
    @property
    def spec(self) -> dict[str, Any]:
        """Shape and data set name: what :func:`dlforge.preprocess.prepare` needs."""
        return self.card["data"]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for images (N, C, H, W) in [0, 1]."""
        return torch.from_numpy(self.run(images.float().cpu().numpy())[1])


class TextClassifierModel(ServedModel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoder = TextEncoder.from_spec(self.card["text"])

    def classify(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, classes) for raw texts, encoded as the training texts were."""
        tokens = self.encoder.encode(texts).numpy()
        parts = [self.run(tokens[i : i + batch_size])[1] for i in range(0, len(tokens), batch_size)]
        if not parts:
            return torch.empty(0, len(self.class_names))
        return torch.from_numpy(np.concatenate(parts))


class AudioClassifierModel(ServedModel):
    @property
    def sample_rate(self) -> int:
        return int(self.card["data"]["sample_rate"])

    def read(self, source: str | Path | bytes) -> torch.Tensor:
        """A mono PCM WAV file (path or bytes) at the model's rate as a (T,) waveform; anything else
        raises :class:`dlforge.audio.AudioInputError` saying what is wrong."""
        return read_wav(source, self.sample_rate)

    @property
    def clip_samples(self) -> int:
        return int(self.card["data"]["clip_samples"])

    def classify(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N, classes) for waveforms, each (T,) in [-1, 1]: clips shorter than the
        training clips are padded with silence, as those were; a checkpoint also takes longer ones,
        an exported graph (fixed length) refuses them."""
        longest = max(self.clip_samples, *(len(wave) for wave in waves))
        if longest > self.clip_samples and self.backend != "pytorch":
            raise AudioInputError(
                f"a clip of {longest / self.sample_rate:.2f} s: this exported model takes at most "
                f"{self.clip_samples / self.sample_rate:.2f} s; trim it (sox in.wav out.wav trim 0 1) or use "
                "the checkpoint"
            )
        batch = torch.stack([F.pad(wave.float().cpu(), (0, longest - len(wave))) for wave in waves])
        return torch.from_numpy(self.run(batch.numpy())[1])


class GeneratorModel(ServedModel):
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


MODEL_TYPES: dict[str, type[ServedModel]] = {
    "image_classification": ImageClassifierModel,
    "text_classification": TextClassifierModel,
    "audio_classification": AudioClassifierModel,
    "image_generation": GeneratorModel,
}


def from_checkpoint(path: str | Path) -> ServedModel:
    model = load_model(path)
    card = describe(model)
    return MODEL_TYPES[card["task"]](card, torch_runner(graph_of(model)), str(path), "pytorch")


def read_card(path: Path) -> dict[str, Any]:
    card_path = sidecar_of(path)
    if not card_path.is_file():
        raise CheckpointError(
            f"no {card_path.name} beside {path}: python -m dlforge.export writes both; keep them together"
        )
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {card_path}: {err}") from None
    if not isinstance(card, dict) or card.get("task") not in MODEL_TYPES or card.get("format") not in FORMATS:
        raise CheckpointError(f"{card_path} is not a dlforge export card (no known task and format)")
    if card.get("card_version", 0) > CARD_VERSION:
        raise CheckpointError(f"{card_path} was written by a newer dlforge ({card.get('dlforge_version')})")
    return card


def from_export(path: str | Path) -> ServedModel:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no exported model at {path}")
    card = read_card(path)
    run = onnx_runner(path) if card["format"] == "onnx" else torchscript_runner(path)
    return MODEL_TYPES[card["task"]](card, run, str(path), card["format"])


def is_export(path: str | Path) -> bool:
    """An exported file (``.onnx``, ``.pt``, or anything with a card beside it) rather than a checkpoint."""
    path = Path(path).expanduser()
    return path.suffix in FORMATS.values() or (path.suffix != ".ckpt" and sidecar_of(path).is_file())


def load(path: str | Path) -> ServedModel:
    """A checkpoint (``.ckpt``) or an exported file (with its JSON card beside it), ready to run."""
    return from_export(path) if is_export(path) else from_checkpoint(path)
