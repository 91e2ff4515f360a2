"""``dlforge <command> [key=value ...]``: every tool behind one command, as ``python -m dlforge``.

``dlforge train model=lenet`` is ``python train.py model=lenet``; ``dlforge <command> --help`` shows a
command's options without loading it.
"""

from __future__ import annotations

import importlib
import sys

from dlforge.usage import tool_help

#: command -> (module, one-line description); each module has a ``main()`` reading ``sys.argv``
COMMANDS = {
    "train": ("dlforge.train", "train a model (python train.py)"),
    "evaluate": ("dlforge.evaluate", "test a checkpoint on a data set"),
    "crossval": ("dlforge.crossval", "k-fold cross-validation of a text classifier"),
    "generate": ("dlforge.generate", "draw samples from a GAN, VAE or WaveNet checkpoint"),
    "dream": ("dlforge.dream", "optimize noise until a classifier sees a class"),
    "pix2pix": ("dlforge.pix2pix", "translate a picture with a pix2pix checkpoint"),
    "predict": (
        "dlforge.predict",
        "classify images, texts or clips, or translate, with a checkpoint or an export",
    ),
    "export": ("dlforge.export", "export a checkpoint to ONNX or TorchScript, checked"),
    "app": ("dlforge.app", "serve the web app"),
    "report": ("dlforge.report", "tabulate and plot runs and sweeps"),
    "embeddings": ("dlforge.embeddings", "score, explore, map and export word vectors"),
}


#: old command names that still work
ALIASES = {"translate": "pix2pix"}


def usage() -> str:
    lines = ["usage: dlforge <command> [key=value ...]   (dlforge <command> --help: its options)", ""]
    width = max(map(len, COMMANDS)) + 2
    lines += [f"  {name:<{width}}{description}" for name, (_, description) in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(usage(), end="")
        return
    name, args = ALIASES.get(sys.argv[1], sys.argv[1]), sys.argv[2:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    if name != "report" and any(arg in ("-h", "--help") for arg in args):
        print(tool_help(name), end="")
        return
    sys.argv = [f"dlforge {name}", *args]
    result = importlib.import_module(COMMANDS[name][0]).main()
    if isinstance(result, int):  # report returns an exit status
        sys.exit(result)


if __name__ == "__main__":
    main()
