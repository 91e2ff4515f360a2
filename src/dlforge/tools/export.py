"""Export a checkpoint for inference: ``python -m dlforge.export ckpt_path=... format=onnx|torchscript``.

Writes one standalone file (the model's graph: normalization inside, plain tensors in and out, see
:mod:`dlforge.inference`) and its card ``<name>.json`` beside it. Before keeping them, the tool runs
the exported file (onnxruntime / ``torch.jit.load``) and the checkpoint on the same inputs - a test
batch of the checkpoint's data set, or prior draws for a generator - and fails if any output differs
beyond ``check.atol + check.rtol * |expected|``.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from dlforge.checkpoint import data_config, data_for, load_model
from dlforge.cli import hydra_entry
from dlforge.errors import DlforgeError
from dlforge.inference import sidecar_of
from dlforge.models import DlforgeModule
from dlforge.outputs import atomic_write, write_json
from dlforge.serving import served_class
from dlforge.serving.served import FORMATS, onnx_runner, torch_runner, torchscript_runner

log = logging.getLogger("dlforge")


def data_batch(model: DlforgeModule, cfg: DictConfig, n: int) -> tuple[torch.Tensor, str]:
    """The first ``n`` test inputs of ``cfg.data``, or of the data set the checkpoint was trained on."""
    name = model.hparams.data.get("name")
    data_cfg = cfg.get("data") or data_config(str(name), cfg.paths, cfg.seed)
    datamodule = data_for(model, data_cfg, download=False)
    inputs = []
    for batch in datamodule.test_dataloader():
        inputs.append(datamodule.on_after_batch_transfer(batch, 0)[0])
        if sum(map(len, inputs)) >= n:
            break
    return torch.cat(inputs)[:n], f"{min(n, sum(map(len, inputs)))} {datamodule.name} test inputs"


def check_inputs(model: DlforgeModule, cfg: DictConfig) -> tuple[tuple[torch.Tensor, ...], str]:
    """What the export is checked on (a test batch, or the family's example inputs), and its description."""
    n = int(cfg.check.samples)
    if n < 2:
        raise DlforgeError(f"check.samples must be at least 2 (got {n})")
    served = served_class(model)
    if not served.checks_on_data:
        return served.example_inputs(model, n, cfg.seed), f"{n} {served.examples} (seed {cfg.seed})"
    try:
        inputs, what = data_batch(model, cfg, n)
        return (inputs,), what
    except Exception as err:
        reason = root_cause(err)
        if cfg.check.require_data:
            raise DlforgeError(f"no data to check the export on ({reason}); set data= or DATA_DIR") from None
        log.warning("checking on random inputs: the data set is not available (%s)", reason)
        return served.example_inputs(model, n, cfg.seed), f"{n} random inputs (data set not found)"


def write_onnx(graph: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path, card: dict, opset: Any):
    for name in ("onnxscript", "onnx_ir"):  # their INFO lines about optimization passes
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=True,
            input_names=[item["name"] for item in card["inputs"]],
            output_names=[item["name"] for item in card["outputs"]],
            dynamic_shapes=tuple({0: batch} for _ in example),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )


def write_torchscript(graph: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """Trace the graph on ``example``, or script it when it has a loop to keep (``graph.scripted``).

    The graph's call is traced as a function, with the weights as constants: tracing a module walks
    every attribute of its submodules, and a LightningModule's ``trainer`` raises outside a Trainer.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices (said once in the docs)
        if getattr(graph, "scripted", False):
            compiled = torch.jit.script(graph)
        else:
            graph.requires_grad_(False)  # constants, not parameters: inference only
            compiled = torch.jit.trace(lambda *inputs: graph(*inputs), example, check_trace=False)
        torch.jit.save(compiled, str(path))


def root_cause(err: BaseException) -> str:
    """The innermost error of a chain, as one short line without terminal colours."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"


def compare(
    names: list[str], expected: list[np.ndarray], got: list[np.ndarray], atol: float, rtol: float
) -> tuple[dict[str, float], str | None]:
    """Max |difference| per output, and the first output beyond tolerance (None: all within)."""
    diffs, failed = {}, None
    for name, want, have in zip(names, expected, got, strict=True):
        if want.shape != have.shape:
            return diffs, f"{name} has shape {list(have.shape)} instead of {list(want.shape)}"
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
        diffs[name] = float(diff.max(initial=0.0))
        if failed is None and not np.all(diff <= atol + rtol * np.abs(want)):
            failed = f"{name} differs by up to {diffs[name]:.3g}"
    return diffs, failed


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` to ``cfg.format``, check it against the checkpoint, write its card."""
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise DlforgeError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    model = load_model(cfg.ckpt_path)
    served = served_class(model)
    refusal = served.export_refusal(model)
    if refusal:
        raise DlforgeError(refusal)
    card = served.describe(model)
    graph = served.graph(model).eval()
    if fmt == "onnx" and getattr(graph, "scripted", False):
        raise DlforgeError(
            f"a {model.kind} model decodes in a loop that only TorchScript keeps; use format=torchscript"
        )
    inputs, what = check_inputs(model, cfg)
    output = Path(cfg.output or Path(cfg.paths.output_dir) / f"model{FORMATS[fmt]}").expanduser()
    if output.suffix == ".json":
        raise DlforgeError(f"output={output} is where the card goes; name the model file .onnx or .pt")
    example = tuple(x[:2] for x in inputs)  # batch 2: the batch size stays a free dimension
    atol, rtol = float(cfg.check.atol), float(cfg.check.rtol)
    with atomic_write(output) as tmp:  # kept only once written and checked
        try:
            if fmt == "onnx":
                write_onnx(graph, example, tmp, card, cfg.opset)
            else:
                write_torchscript(graph, example, tmp)
        except Exception as err:
            hint = "; format=torchscript traces it instead" if fmt == "onnx" else ""
            raise DlforgeError(f"{fmt} export of this {model.kind} failed: {root_cause(err)}{hint}") from None
        arrays = [x.numpy() for x in inputs]
        expected = torch_runner(graph)(*arrays)
        got = (onnx_runner if fmt == "onnx" else torchscript_runner)(tmp)(*arrays)
        names = [item["name"] for item in card["outputs"]]
        diffs, failed = compare(names, expected, got, atol, rtol)
        if failed:
            raise DlforgeError(
                f"the exported {fmt} model does not match the checkpoint: {failed} on {what} "
                f"(tolerance {atol:g} + {rtol:g} * |expected|); nothing was written"
            )
    card = {
        **card,
        "format": fmt,
        "file": output.name,
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
        "check": {"inputs": what, "max_abs_diff": diffs, "atol": atol, "rtol": rtol},
    }
    card_path = write_json(sidecar_of(output), card)
    size = output.stat().st_size / 1e6
    print(f"exported {model.kind} to {output} ({size:.1f} MB) and its card {card_path}", flush=True)
    print(
        "check passed on " + what + ": max |difference| "
        + ", ".join(f"{name} {value:.2g}" for name, value in diffs.items()),
        flush=True,
    )  # fmt: skip
    return {"output": str(output), "card": str(card_path), "check": card["check"]}


@hydra_entry("export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
