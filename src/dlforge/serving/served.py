"""What every family's serving builds on: the card, the runners, and :class:`ServedModel`.

A family serves itself from ``serving/<family>.py``: a :class:`ServedModel` subclass registered for
its model class (``dlforge.registry.register_serving``) that says, for a checkpoint, what its card
and graph are, and, once loaded (from the checkpoint or an export), how it predicts, generates and
which app panels it offers. The tools (predict, generate, export, app) look it up by the model's
class or the card's task and hold no family names.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from dlforge import __version__
from dlforge.errors import CheckpointError, DlforgeError, first_line
from dlforge.outputs import write_text

if TYPE_CHECKING:
    from dlforge.models import DlforgeModule
    from dlforge.serving.web import AppContext

CARD_VERSION = 1
#: Exported formats and their file suffixes.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: Where the built-in panels' HTML and JavaScript live (``<panel>.html``, ``<panel>.js``).
PANEL_FILES = Path(__file__).with_name("panels")

#: A model in any form: numpy inputs (in the card's order) -> numpy outputs (in the card's order).
Runner = Callable[..., list[np.ndarray]]


def card_header(model: DlforgeModule, task: str) -> dict[str, Any]:
    """The keys every card starts with."""
    return {"card_version": CARD_VERSION, "dlforge_version": __version__, "kind": model.kind, "task": task}


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


def read_texts(source: str) -> list[str]:
    """One text per line from a file, or from stdin for ``-`` (empty lines skipped)."""
    if source == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DlforgeError(f"no input file at {path}; pass input=<file with one text a line> or input=-")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def write_json_answer(
    output: str | None, model: ServedModel, key: str, results: list[dict[str, Any]], single: bool
) -> dict[str, Any]:
    """``json=true``: one result (``single``) or the document of all, to ``output`` or stdout."""
    document = {"model": model.source, "kind": model.kind, key: results}
    text = json.dumps(results[0] if single else document, indent=2)
    if output and output != "-":
        write_text(output, text + "\n")
    else:
        print(text, flush=True)
    return document


class ServedModel:
    """A model ready to run: its card, a runner, and where it came from.

    A family's subclass fills in the class-level parts. For a checkpoint (the tools call these):

    - :meth:`accepts`: whether it serves this model (a class's models may differ by their data);
    - :meth:`describe`: the card (plain data: inputs, outputs, preprocessing);
    - :meth:`graph`: the exportable module (plain tensors in and out), or :meth:`runner` for a model
      that runs in a loop outside one graph; :meth:`export_refusal` says why a model cannot be exported;
    - :meth:`example_inputs`: inputs the export is checked on when the data set is not at hand
      (``checks_on_data``: try the test split first);
    - :meth:`write_samples`: ``python -m dlforge.generate`` for a generative family.

    Once loaded: :meth:`predict` (``python -m dlforge.predict``), :attr:`panels` and :meth:`add_routes`
    (the app's panels: ``<panel>.html`` and ``<panel>.js`` in :attr:`panel_files`), :meth:`panel_info`;
    the app opens a panel's model with :meth:`open_model` from its option (:attr:`panel_options`).
    """

    #: the card's task, e.g. ``image_classification``; an export's card finds its class by it
    task: ClassVar[str]
    #: what the family is, for messages: "an image classifier"
    what: ClassVar[str]
    #: the export is checked on a test batch of the model's data set before :meth:`example_inputs`
    checks_on_data: ClassVar[bool] = True
    #: what :meth:`example_inputs` are, for the export's card
    examples: ClassVar[str] = "random inputs"
    #: the app panels this family offers, and where their files are
    panels: ClassVar[tuple[str, ...]] = ()
    panel_files: ClassVar[Path] = PANEL_FILES
    #: the app option naming a panel's model where it is not the panel's name (``{"embeddings": "vectors"}``)
    panel_options: ClassVar[dict[str, str]] = {}
    #: what ``predict`` adds when this family cannot predict (e.g. "sample it with dlforge.generate")
    predict_hint: ClassVar[str] = ""

    def __init__(self, card: dict[str, Any], run: Runner, source: str, backend: str) -> None:
        self.card, self.run, self.source, self.backend = card, run, source, backend

    # --- a checkpoint -------------------------------------------------------------------------
    @classmethod
    def accepts(cls, model: DlforgeModule) -> bool:
        return True

    @classmethod
    def describe(cls, model: DlforgeModule) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def graph(cls, model: DlforgeModule) -> nn.Module:
        raise DlforgeError(f"{model.kind} models run outside one graph and cannot be exported")

    @classmethod
    def runner(cls, model: DlforgeModule) -> Runner:
        return torch_runner(cls.graph(model).eval())

    @classmethod
    def export_refusal(cls, model: DlforgeModule) -> str | None:
        """Why this model cannot be exported (None: it can)."""
        return None

    @classmethod
    def example_inputs(cls, model: DlforgeModule, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        raise DlforgeError(f"{model.kind} models have no example inputs")

    @classmethod
    def write_samples(cls, cfg: DictConfig, model: DlforgeModule) -> Path:
        """Write what ``python -m dlforge.generate`` asks for (``cfg``) and return the file's path."""
        raise CheckpointError(
            f"{cfg.ckpt_path} holds a {model.kind} model ({cls.what}); this tool needs a generative model"
        )

    @classmethod
    def open_model(cls, path: str, cache_dir: str | None = None) -> ServedModel:
        """The model of one of this family's panels from the path the app is given: a checkpoint or an
        export (:func:`dlforge.inference.load`) unless the family's panel takes other files."""
        from dlforge.inference import load  # (it imports every family's serving)

        return load(path)

    # --- a loaded model -----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def class_names(self) -> list[str]:
        return list(self.card.get("class_names", []))

    def predict(self, cfg: DictConfig) -> dict[str, Any]:
        hint = f"; {self.predict_hint}" if self.predict_hint else ""
        raise DlforgeError(f"predict does not handle {self.kind} models ({self.what}){hint}")

    def panel_info(self) -> dict[str, Any]:
        """What the page shows of this model (besides source, backend, kind, data and class names)."""
        return {}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        """Add this family's JSON endpoints (``/api/...``) to the app."""
